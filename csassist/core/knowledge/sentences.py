"""Split text into sentences: the unit of per-sentence query scoring and of "which sentence matched".

Two jobs share this splitter.  A long customer message ("Hi, I ordered a lamp on the 3rd, order
LK-1234 ... anyway, I was charged twice") carries its request in one sentence; the whole-message
embedding is diluted by the story around it, so retrieval also scores each sentence on its own.  And
an agent trusts a KB answer faster when the sentence that matched is shown, so every chunk's
sentences are embedded at index time.

Markdown is flattened first (headings, list bullets, bold markers) so that a bullet list counts as
separate sentences and its markers are never shown as evidence.

Unlike the reply side's splitters it does not keep an abbreviation's full stop inside the sentence
(:mod:`csassist.core.abbreviations`): that was measured, and the KB's sentence vectors built from
the merged sentences ("Include your order number (e.g. LK-123456) in the subject.") found the right
article first for fewer dev-set messages (hit@1 0.866 -> 0.863, the extractive reply 0.894 -> 0.888)
than the fragments do; the fragments stay until that is understood.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_MARKERS = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
#: Pieces shorter than this are glued to their neighbour ("Hi." carries nothing on its own).
MIN_CHARS = 12
#: Sentences longer than this are cut (the encoder truncates anyway; evidence must stay readable).
MAX_CHARS = 400


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` without Markdown markers; short fragments merged into the next one."""
    lines = [_MARKERS.sub("", line) for line in (text or "").splitlines()]
    flat = "\n".join(line.replace("**", "").replace("__", "") for line in lines)
    pieces = [p.strip() for p in _BOUNDARY.split(flat) if p and p.strip()]
    out: list[str] = []
    carry = ""
    for piece in pieces:
        joined = f"{carry} {piece}".strip() if carry else piece
        if len(joined) < MIN_CHARS:
            carry = joined
            continue
        out.append(joined[:MAX_CHARS])
        carry = ""
    if carry:
        if out:
            out[-1] = f"{out[-1]} {carry}"[:MAX_CHARS]
        else:
            out.append(carry[:MAX_CHARS])
    return out


def locate_sentences(text: str, sentences: Sequence[str]) -> list[tuple[int, int] | None]:
    """Where each of ``sentences`` (from :func:`split_sentences` of ``text``) sits in ``text``, in order.

    Why: the query side pools a sentence's vector from the whole message's token states
    (:mod:`~csassist.core.knowledge.late_chunking`), which needs the sentence's character span in the
    text the encoder saw.  The splitter rewrites whitespace and drops Markdown markers, so a sentence
    is matched word by word with any whitespace between; one that cannot be found (a marker removed
    from its middle) is ``None`` and the caller encodes it on its own.
    """
    spans: list[tuple[int, int] | None] = []
    position = 0
    for sentence in sentences:
        words = sentence.split()
        match = re.compile(r"\s+".join(map(re.escape, words))).search(text, position) if words else None
        if match is None:
            spans.append(None)
            continue
        spans.append((match.start(), match.end()))
        position = match.end()
    return spans

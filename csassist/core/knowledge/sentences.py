"""Split text into sentences: the unit of per-sentence query scoring and of "which sentence matched".

Two jobs share this splitter.  A long customer message ("Hi, I ordered a lamp on the 3rd, order
LK-1234 ... anyway, I was charged twice") carries its request in one sentence; the whole-message
embedding is diluted by the story around it, so retrieval also scores each sentence on its own.  And
an agent trusts a KB answer faster when the sentence that matched is shown, so every chunk's
sentences are embedded at index time.

Markdown is flattened first (headings, list bullets, bold markers) so that a bullet list counts as
separate sentences and its markers are never shown as evidence.  A full stop of an abbreviation
("e.g.", "Larkspur & Co.") does not end a sentence (:mod:`csassist.core.abbreviations`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from csassist.core.abbreviations import ends_with_abbreviation

_MARKERS = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+")
#: Pieces shorter than this are glued to their neighbour ("Hi." carries nothing on its own).
MIN_CHARS = 12
#: Sentences longer than this are cut (the encoder truncates anyway; evidence must stay readable).
MAX_CHARS = 400


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` without Markdown markers; short fragments merged into the next one."""
    pieces: list[str] = []
    for raw in (text or "").splitlines():  # a line break always ends a sentence
        line = _MARKERS.sub("", raw).replace("**", "").replace("__", "")
        merged: list[str] = []
        for piece in (p.strip() for p in _BOUNDARY.split(line)):
            if merged and piece and ends_with_abbreviation(merged[-1], piece):
                merged[-1] = f"{merged[-1]} {piece}"
            elif piece:
                merged.append(piece)
        pieces.extend(merged)
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

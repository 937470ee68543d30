"""Split article bodies into retrievable passages and define exactly what gets embedded.

Passages of roughly 800-1200 characters keep one topic each (so a hit is specific and fits in the
generator's prompt) while staying long enough to carry context.  Bodies are cut at ``##`` headings
first, then at paragraphs, then at sentences, never mid-word; short neighbouring pieces are merged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from csassist.core.types import Article, Chunk

#: A chunk grows up to this many characters before a new one starts.
MAX_CHARS = 1200
#: Pieces are merged until a chunk holds at least this much (when the next piece fits).
TARGET_CHARS = 800

_HEADING = re.compile(r"^#{2,6}\s", re.MULTILINE)
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def embedding_text(title: str, questions: Sequence[str], text: str) -> str:
    """What the embedder sees for a chunk: title, question variants, then the passage.

    The title and the phrasings customers use ("where is my parcel?") move the vector towards the
    way questions are asked, which a bare answer paragraph often does not.
    """
    parts = [title.strip(), *(q.strip() for q in questions if q.strip()), text.strip()]
    return "\n".join(p for p in parts if p)


def content_hash(text: str) -> str:
    """sha256 of the embedded text: equal hashes mean the stored vector can be reused."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_body(body: str, max_chars: int = MAX_CHARS, target_chars: int = TARGET_CHARS) -> list[str]:
    """Cut a Markdown body into passages of at most ``max_chars`` (a single long word may exceed it)."""
    pieces: list[str] = []
    for section in _sections(body):
        if len(section) <= max_chars:
            pieces.append(section)
            continue
        for paragraph in _PARAGRAPH.split(section):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            if len(paragraph) <= max_chars:
                pieces.append(paragraph)
            else:
                pieces.extend(_split_long(paragraph, max_chars))
    return _merge(pieces, max_chars, target_chars)


def _sections(body: str) -> list[str]:
    """The body cut before each ``##`` (or deeper) heading; the heading stays with its section."""
    starts = [m.start() for m in _HEADING.finditer(body)]
    bounds = [0, *starts, len(body)] if not starts or starts[0] != 0 else [*starts, len(body)]
    out = []
    for begin, end in zip(bounds, bounds[1:], strict=False):
        section = body[begin:end].strip()
        if section:
            out.append(section)
    return out


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    """A paragraph longer than ``max_chars``: split at sentence ends, then at spaces."""
    units: list[str] = []
    for sentence in _SENTENCE.split(paragraph):
        if len(sentence) <= max_chars:
            units.append(sentence)
        else:
            units.extend(_split_words(sentence, max_chars))
    return _pack(units, max_chars)


def _split_words(sentence: str, max_chars: int) -> list[str]:
    """Last resort for a huge sentence: cut between words."""
    return _pack(sentence.split(), max_chars)


def _pack(units: Sequence[str], max_chars: int) -> list[str]:
    """Join ``units`` with spaces into as few pieces as possible, each at most ``max_chars`` long
    (a single unit longer than that stays whole)."""
    out: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + 1 + len(unit) > max_chars:
            out.append(current)
            current = unit
        else:
            current = f"{current} {unit}" if current else unit
    if current:
        out.append(current)
    return out


def _merge(pieces: list[str], max_chars: int, target_chars: int) -> list[str]:
    """Join consecutive small pieces while the chunk is under target and the result fits."""
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) < target_chars and len(out[-1]) + 2 + len(piece) <= max_chars:
            out[-1] = f"{out[-1]}\n\n{piece}"
        else:
            out.append(piece)
    return out


def chunk_article(article: Article) -> list[Chunk]:
    """An article's chunks, ids ``"{article_id}#{n}"`` counting from 0, each with its content hash."""
    texts = split_body(article.body) or [article.questions[0] if article.questions else article.title]
    chunks = []
    for n, text in enumerate(texts):
        embedded = embedding_text(article.title, article.questions, text)
        chunks.append(
            Chunk(
                chunk_id=f"{article.article_id}#{n}",
                article_id=article.article_id,
                title=article.title,
                text=text,
                source=article.source,
                intents=article.intents,
                tags=article.tags,
                content_hash=content_hash(embedded),
            )
        )
    return chunks

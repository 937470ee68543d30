"""Read a knowledge-base directory into articles, chunks and intent examples.

A KB is a plain directory a support team can edit in any text editor and keep in git:

* ``**/*.md`` -- one article per file: YAML front matter (``id``, ``title``, ``intents``, ``tags``,
  optional ``questions``) between ``---`` lines, then a Markdown body.  ``README.md`` at the root is
  documentation, not an article.
* ``**/*.csv`` / ``**/*.jsonl`` -- FAQ tables (``question,answer`` plus optional ``id,title,intent``),
  because that is how help-desk tools export FAQs.  Every row becomes one article.
* ``intents.csv`` / ``intents.jsonl`` at the root -- ``text,intent`` training examples for the intent
  model; ``conversations/`` -- demo conversations.  Neither is an article.
* ``eval/`` -- the held-out dev set (never indexed or trained on, or its scores would mean nothing) and
  ``offtopic.csv`` at the root -- off-topic negatives for the out-of-scope detector.  Not articles either.

Bad input never stops the load: each broken file or row becomes a :class:`KBProblem` naming the file
and line, and everything else is still returned, so one typo cannot take the whole KB offline.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import reprlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from csassist.core.errors import KBError
from csassist.core.io.limits import DEFAULT_MAX_KB_FILE_BYTES
from csassist.core.knowledge.chunking import chunk_article, embedding_text
from csassist.core.textnorm import normalize_text
from csassist.core.types import Article, Chunk, IntentExample, KBProblem

#: Root-level files holding intent training examples (``text,intent``), not FAQ rows.
INTENT_FILES = ("intents.csv", "intents.jsonl")
#: Top-level directory of demo conversations (read by the demo replay, not here).
CONVERSATIONS_DIR = "conversations"
#: Top-level directory of held-out evaluation data: never an article, never a training example.
EVAL_DIR = "eval"
#: Root-level file of off-topic (``oos``) negatives: ``text,intent`` rows, not FAQ rows.
OFFTOPIC_FILE = "offtopic.csv"
#: At most this many row-level problems are listed per file; the rest are summarised in one line.
MAX_PROBLEMS_PER_FILE = 20

_INTENT_SPLIT = re.compile(r"[|;]")


@dataclass(frozen=True)
class KBContents:
    """Everything read from one KB directory, including what could not be read and why."""

    articles: tuple[Article, ...]
    chunks: tuple[Chunk, ...]
    intent_examples: tuple[IntentExample, ...]
    problems: tuple[KBProblem, ...]
    files_read: int

    def embedding_texts(self) -> list[str]:
        """The exact text embedded for each chunk (aligned with ``chunks``): title + questions + passage."""
        by_id = {a.article_id: a for a in self.articles}
        return [embedding_text(c.title, by_id[c.article_id].questions, c.text) for c in self.chunks]


class _Problems:
    """Collects problems for one file, capping row-level noise so a wrong export stays readable."""

    def __init__(self, source: str, sink: list[KBProblem]) -> None:
        self.source = source
        self.sink = sink
        self.count = 0

    def add(self, line: int, message: str) -> None:
        """Record one problem (beyond the cap, only counted)."""
        self.count += 1
        if self.count <= MAX_PROBLEMS_PER_FILE:
            self.sink.append(KBProblem(self.source, line, message))

    def close(self) -> None:
        """Append the summary line for problems beyond the cap."""
        hidden = self.count - MAX_PROBLEMS_PER_FILE
        if hidden > 0:
            self.sink.append(KBProblem(self.source, 0, f"... and {hidden} more problem(s) in this file"))


def load_kb(root: Path, *, max_file_bytes: int = DEFAULT_MAX_KB_FILE_BYTES) -> KBContents:
    """Read every article, FAQ row and intent example under ``root``.

    Raises :class:`KBError` only when ``root`` itself is missing or not a directory; every other
    problem is returned in ``problems`` while the rest of the KB loads.  Files that resolve outside
    ``root`` (symlinks), unreadable folders and files over ``max_file_bytes`` are reported and skipped.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise KBError(f"knowledge base not found: {root} does not exist")
    if not root.is_dir():
        raise KBError(f"knowledge base must be a directory: {root}")

    problems: list[KBProblem] = []
    articles: list[Article] = []
    first_seen: dict[str, str] = {}  # article id -> "file:line" of its first definition
    examples: list[IntentExample] = []
    files_read = 0

    for path in _kb_files(root, problems):
        rel = path.relative_to(root).as_posix()
        sink = _Problems(rel, problems)
        text = _read_text(path, sink, max_file_bytes)
        files_read += 1
        if text is None:
            sink.close()
            continue
        if rel in INTENT_FILES:
            examples.extend(_parse_intents(text, rel, path.suffix, sink))
            sink.close()
            continue
        if path.suffix == ".md":
            found = _parse_markdown(text, rel, sink)
        elif path.suffix == ".csv":
            found = _parse_csv_faq(text, rel, path.stem, sink)
        else:
            found = _parse_jsonl_faq(text, rel, path.stem, sink)
        for article, line in found:
            where = f"{rel}:{line}" if line else rel
            if article.article_id in first_seen:
                sink.add(
                    line,
                    f"duplicate id {article.article_id!r} (first defined at {first_seen[article.article_id]}); skipped",
                )
                continue
            first_seen[article.article_id] = where
            articles.append(article)
        sink.close()

    chunks = [chunk for article in articles for chunk in chunk_article(article)]
    return KBContents(
        articles=tuple(articles),
        chunks=tuple(chunks),
        intent_examples=tuple(examples),
        problems=tuple(problems),
        files_read=files_read,
    )


def _kb_files(root: Path, problems: list[KBProblem]) -> Iterator[Path]:
    """KB files in a stable order, skipping hidden paths, conversations/, eval/, offtopic.csv and the root README.

    Walks without following linked folders.  A file or folder link that resolves outside ``root``
    is reported and skipped without reading a byte of it (``passwd.csv -> /etc/passwd`` used to be
    indexed, and its first line echoed in the error); an unreadable folder is reported instead of
    silently contributing nothing.
    """
    real_root = root.resolve()
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        rel = where.relative_to(root).as_posix() if where.is_relative_to(root) else str(where)
        problems.append(KBProblem(rel, 0, f"cannot read folder: {exc.strerror or exc}; its files are skipped"))

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=False):
        base = Path(folder)
        dirs.sort()
        for name in list(dirs):
            link = base / name
            rel = link.relative_to(root)
            if name.startswith(".") or rel.parts[0] in (CONVERSATIONS_DIR, EVAL_DIR):
                dirs.remove(name)
            elif link.is_symlink():
                dirs.remove(name)  # never followed: a linked folder inside the KB is walked at its real path
                if not _inside(link, real_root):
                    problems.append(KBProblem(rel.as_posix(), 0, "folder link points outside the knowledge base; skipped"))
        for name in files:
            path = base / name
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or path.suffix not in (".md", ".csv", ".jsonl"):
                continue
            if rel.as_posix().lower() == "readme.md" or rel.as_posix() == OFFTOPIC_FILE:
                continue
            if path.is_symlink() and not _inside(path, real_root):
                problems.append(KBProblem(rel.as_posix(), 0, "link points outside the knowledge base; skipped"))
                continue
            if not path.is_file():
                continue
            found.append(path)
    yield from sorted(found)


def _inside(path: Path, real_root: Path) -> bool:
    """Whether ``path`` (after following every link) lies inside the KB root."""
    try:
        return path.resolve().is_relative_to(real_root)
    except (OSError, RuntimeError):  # a link loop
        return False


def _read_text(path: Path, problems: _Problems, max_file_bytes: int = DEFAULT_MAX_KB_FILE_BYTES) -> str | None:
    """Decode a file as UTF-8, reporting unreadable, oversized, binary, non-UTF-8 and empty files."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_file_bytes:  # checked before reading: a 200 MB export is not chunked for minutes
                problems.add(
                    0,
                    f"file is {size / 1e6:.1f} MB, over the {max_file_bytes / 1e6:.1f} MB limit "
                    "([retrieval] max_kb_file_bytes); skipped",
                )
                return None
            data = handle.read(max_file_bytes + 1)
    except OSError as exc:
        problems.add(0, f"cannot read file: {exc.strerror or exc}")
        return None
    if len(data) > max_file_bytes:  # grew while we looked
        problems.add(0, f"file is over the {max_file_bytes / 1e6:.1f} MB limit ([retrieval] max_kb_file_bytes); skipped")
        return None
    if b"\x00" in data:
        problems.add(0, "binary file (contains NUL bytes); skipped")
        return None
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM, as Excel writes it, is not content
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start
        line = data[:offset].count(b"\n") + 1
        problems.add(line, f"not valid UTF-8 (byte 0x{data[offset]:02x} at offset {offset}); save the file as UTF-8")
        return None
    if not text.strip():
        problems.add(0, "empty file; skipped")
        return None
    return normalize_text(text)  # NFC and \n line ends, like every other entry point


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxstring, _BRIEF.maxother = 2, 4, 4, 60, 60


def _brief(value: Any) -> str:
    """A short repr for a problem line (nested YAML aliases must not expand into the report)."""
    return _BRIEF.repr(value)[:120]


def _as_strings(value: Any, field: str, line: int, problems: _Problems) -> tuple[str, ...]:
    """Front-matter list field -> tuple of non-empty strings (a single string counts as one item)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.add(line, f"{field!r} should be a list of strings; ignored")
        return ()
    out = []
    for item in value:
        if isinstance(item, (str, int, float)) and not isinstance(item, bool) and str(item).strip():
            out.append(normalize_text(str(item)).strip())
        else:
            # reprlib: an aliased YAML structure ("billion laughs") must not expand into the report
            problems.add(line, f"{field!r} holds a non-text item {_brief(item)}; ignored")
    return tuple(out)


def _parse_markdown(text: str, rel: str, problems: _Problems) -> list[tuple[Article, int]]:
    """One Markdown article: front matter + body.  Returns ``[(article, line)]`` or ``[]``."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        problems.add(1, "missing front matter: the file must start with a '---' line, then id: and title:")
        return []
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        problems.add(1, "front matter is not closed: add a '---' line after the id/title block")
        return []
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1  # +1 for the opening '---', +1 for 1-based
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.add(line, f"broken front matter (YAML): {reason}")
        return []
    except (ValueError, OverflowError, RecursionError) as exc:  # a 5,000-digit int, month 13, deep nesting
        problems.add(1, f"broken front matter (YAML): unreadable value ({str(exc)[:80]})")
        return []
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        problems.add(2, "front matter must be a mapping of keys (id:, title:, ...)")
        return []
    article_id = _scalar(meta.get("id"))
    title = _scalar(meta.get("title"))
    missing = [name for name, value in (("id", article_id), ("title", title)) if not value]
    if missing:
        problems.add(1, f"front matter lacks required {' and '.join(missing)}; skipped")
        return []
    body = "\n".join(lines[end + 1 :]).strip()
    questions = _as_strings(meta.get("questions"), "questions", 1, problems)
    if not body and not questions:
        problems.add(end + 1, "article has no body; skipped")
        return []
    article = Article(
        article_id=article_id,
        title=title,
        body=body,
        source=rel,
        intents=_as_strings(meta.get("intents", meta.get("intent")), "intents", 1, problems),
        tags=_as_strings(meta.get("tags"), "tags", 1, problems),
        questions=questions,
    )
    return [(article, 1)]


def _scalar(value: Any) -> str:
    """A front-matter scalar as stripped text ('' when absent or not a scalar).

    Normalised here as well as on the raw file: YAML and JSON escapes ("\\ud800") create lone
    surrogates only after parsing.
    """
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return ""
    return normalize_text(str(value)).strip()


def _split_intents(value: Any) -> tuple[str, ...]:
    """FAQ ``intent`` cell: several intents separated by ``|`` or ``;`` (a JSON list also works)."""
    if isinstance(value, list):
        items = [str(v) for v in value]
    elif value is None:
        items = []
    else:
        items = _INTENT_SPLIT.split(str(value))
    return tuple(i.strip() for i in items if i.strip())


def _faq_article(
    row: dict[str, Any], rel: str, stem: str, number: int, line: int, problems: _Problems
) -> Article | None:
    """Turn one FAQ row (lower-cased keys) into an article, reporting an unusable row."""
    question = _scalar(row.get("question"))
    answer = _scalar(row.get("answer"))
    if not question or not answer:
        missing = " and ".join(n for n, v in (("question", question), ("answer", answer)) if not v)
        problems.add(line, f"row has no {missing}; skipped")
        return None
    intents = row.get("intent", row.get("intents"))
    return Article(
        article_id=_scalar(row.get("id")) or f"{stem}-{number}",
        title=_scalar(row.get("title")) or question,
        body=answer,
        source=rel,
        intents=_split_intents(intents),
        tags=_split_intents(row.get("tags")),
        questions=(question,),
    )


def _csv_rows(text: str, problems: _Problems) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(number, line, row)`` per CSV record (keys lower-cased); bad records reported.

    ``number`` counts every non-blank data record, skipped ones included, so default ids of later
    rows do not shift when an earlier row is broken.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        problems.add(1, f"cannot read the CSV header: {exc}")
        return
    keys = [h.strip().lower() for h in header]
    previous_end = reader.line_num
    number = 0
    while True:
        start = previous_end + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.add(start, f"malformed CSV record: {exc}")
            return
        previous_end = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        number += 1
        if len(record) > len(keys):
            problems.add(start, f"row has {len(record)} fields but the header has {len(keys)}; skipped")
            continue
        yield number, start, dict(zip(keys, record, strict=False))


def _csv_header_ok(text: str, required: Iterable[str], rel: str, problems: _Problems) -> bool:
    """Check a CSV's header names the required columns; report them on line 1 if not."""
    first = next(csv.reader(io.StringIO(text)), [])
    present = {h.strip().lower() for h in first}
    missing = [c for c in required if c not in present]
    if missing:
        problems.add(
            1,
            f"missing column(s) {', '.join(missing)}: the header must name {','.join(required)} "
            f"(found: {','.join(h.strip() for h in first) or 'nothing'}); file skipped",
        )
        return False
    return True


def _parse_csv_faq(text: str, rel: str, stem: str, problems: _Problems) -> list[tuple[Article, int]]:
    """A FAQ export as CSV: one article per row."""
    if not _csv_header_ok(text, ("question", "answer"), rel, problems):
        return []
    out = []
    for number, line, row in _csv_rows(text, problems):
        article = _faq_article(row, rel, stem, number, line, problems)
        if article is not None:
            out.append((article, line))
    return out


def _jsonl_objects(text: str, problems: _Problems) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(number, line, object)`` per JSONL object (keys lower-cased); bad lines reported.

    ``number`` counts non-blank lines, broken ones included, so default ids stay stable.
    """
    number = 0
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        number += 1
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.add(line_no, f"invalid JSON: {exc.msg} (column {exc.colno}); skipped")
            continue
        except RecursionError:
            problems.add(line_no, "JSON nested too deeply; skipped")
            continue
        except ValueError as exc:  # a number beyond Python's 4,300-digit int conversion limit
            problems.add(line_no, f"unreadable JSON value ({str(exc)[:60]}); skipped")
            continue
        if not isinstance(obj, dict):
            problems.add(line_no, "each line must be a JSON object; skipped")
            continue
        yield number, line_no, {str(k).strip().lower(): v for k, v in obj.items()}


def _parse_jsonl_faq(text: str, rel: str, stem: str, problems: _Problems) -> list[tuple[Article, int]]:
    """A FAQ export as JSON lines: one article per object with ``question`` and ``answer``."""
    out = []
    for number, line, obj in _jsonl_objects(text, problems):
        if "question" not in obj or "answer" not in obj:
            problems.add(line, "object lacks the 'question' and/or 'answer' key; skipped")
            continue
        article = _faq_article(obj, rel, stem, number, line, problems)
        if article is not None:
            out.append((article, line))
    return out


def _parse_intents(text: str, rel: str, suffix: str, problems: _Problems) -> list[IntentExample]:
    """``text,intent`` rows -> labelled examples for the intent model."""
    if suffix == ".csv":
        if not _csv_header_ok(text, ("text", "intent"), rel, problems):
            return []
        rows: Iterable[tuple[int, int, dict[str, Any]]] = _csv_rows(text, problems)
    else:
        rows = _jsonl_objects(text, problems)
    out = []
    for _number, line, row in rows:
        utterance = _scalar(row.get("text"))
        intent = _scalar(row.get("intent"))
        if not utterance or not intent:
            missing = " and ".join(n for n, v in (("text", utterance), ("intent", intent)) if not v)
            problems.add(line, f"example has no {missing}; skipped")
            continue
        out.append(IntentExample(text=utterance, intent=intent, source=rel, line=line))
    return out

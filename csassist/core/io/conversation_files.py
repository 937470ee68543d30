"""Reading whole JSONL conversation files, and the line reader every message source shares.

Kept apart from :mod:`csassist.core.io.sources` (the threaded, followed feeds) because reading a
finished file -- the demo conversations, ``csassist suggest`` / ``summarize``, tests and benchmarks --
needs none of the thread machinery, while both need the same line rules: one bad line is reported as
``file:line: why`` and skipped, never dropping a good one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from csassist import paths
from csassist.core.errors import CsassistError
from csassist.core.io.message_format import parse_message
from csassist.core.types import Message

ProblemSink = Callable[[str], None]


class LineReader:
    """Turns raw JSONL lines into messages, numbering lines and reporting problems as ``where:line``."""

    def __init__(self, where: str, report: ProblemSink) -> None:
        self.where = where
        self.report = report
        self.lineno = 0

    def feed(self, raw: bytes | str) -> Message | None:
        """Parse the next physical line (with or without its newline); ``None`` when blank or bad."""
        self.lineno += 1
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.report(f"{self.where}:{self.lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start}), skipped")
                return None
        else:
            line = raw
        if self.lineno == 1:
            line = line.removeprefix("\ufeff")
        line = line.strip()
        if not line:
            return None
        try:
            obj: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            self.report(f"{self.where}:{self.lineno}: invalid JSON ({exc.msg} at column {exc.colno}), skipped")
            return None
        except RecursionError:
            self.report(f"{self.where}:{self.lineno}: JSON nested too deeply, skipped")
            return None
        except ValueError as exc:  # e.g. an integer beyond Python's 4,300-digit conversion limit
            self.report(f"{self.where}:{self.lineno}: unreadable JSON value ({str(exc)[:80]}), skipped")
            return None
        try:
            return parse_message(obj)
        except ValueError as exc:
            self.report(f"{self.where}:{self.lineno}: {exc}, skipped")
            return None


# --------------------------------------------------------------------------------------------------
# Loading whole files (demo conversations, tests, benchmarks)
# --------------------------------------------------------------------------------------------------


def demo_conversations_dir() -> Path:
    """The bundled demo conversations (``kb/conversations`` in the checkout)."""
    return paths.bundled_kb_dir() / "conversations"


def jsonl_files(path: Path) -> list[Path]:
    """``path`` itself, or the sorted ``*.jsonl`` files of a directory; ``CsassistError`` when missing."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.jsonl") if p.is_file())
    if path.is_file():
        return [path]
    raise CsassistError(f"{path}: no such conversation file or directory")


def read_conversations(path: Path) -> tuple[list[Message], list[str]]:
    """All valid messages of a JSONL file (or of every ``*.jsonl`` in a directory) plus the problems.

    Problems are ``"file:line: why"`` strings; bad lines are skipped, every good line is kept.
    """
    messages: list[Message] = []
    problems: list[str] = []
    for file in jsonl_files(Path(path)):
        reader = LineReader(str(file), problems.append)
        try:
            with open(file, "rb") as handle:
                for raw in handle:
                    message = reader.feed(raw)
                    if message is not None:
                        messages.append(message)
        except OSError as exc:
            problems.append(f"{file}: cannot read ({exc.strerror or exc})")
    return messages, problems


def load_conversations(path: Path, on_problem: ProblemSink | None = None) -> list[Message]:
    """Valid messages of ``path`` (file or directory); each bad line goes to ``on_problem``.

    Raises :class:`CsassistError` only when ``path`` does not exist at all.
    """
    messages, problems = read_conversations(path)
    if on_problem is not None:
        for problem in problems:
            on_problem(problem)
    return messages

"""Company id patterns from config.toml, run by a linear-time regex engine (RE2).

``[company] order_patterns`` / ``tracking_patterns`` are regexes a user types, and they run over every
customer message.  With Python's backtracking ``re`` a pattern like ``(a+)+$`` takes exponential time
on ``"aaaa…!"`` and freezes analysis; RE2 (``google-re2``) matches in time linear in the text for
*every* pattern it accepts.  It refuses what cannot be matched that way (back-references,
look-arounds, huge repeat counts), and those refusals become one clear config warning instead of a
hang.  Built-in patterns stay on ``re``: they are written with bounded quantifiers and tested against
the hostile corpus.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would otherwise print parse errors to stderr, under the TUI


class PatternError(ValueError):
    """A configured pattern that cannot be used; the message says which one and why."""


@functools.lru_cache(maxsize=256)
def compile_user_pattern(pattern: str) -> Any:
    """Compile one configured pattern with RE2 (cached); :class:`PatternError` when it is unusable."""
    if not pattern:
        raise PatternError("an empty pattern would match everywhere")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(
            f"pattern {pattern!r} cannot be used ({reason}); back-references, look-arounds and repeats "
            "over 1000 are not supported, because they could freeze analysis"
        ) from None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is unusable, or ``None`` when it compiles (for settings validation)."""
    try:
        compile_user_pattern(pattern)
    except PatternError as exc:
        return str(exc)
    return None


def _matchable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (same length, so offsets stay valid).

    RE2 works on UTF-8, which cannot encode a lone surrogate; intake already replaces them, this
    keeps a direct caller (a test, a script) from crashing.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return text


def finditer_user_pattern(pattern: str, text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of every non-empty match of a usable pattern; unusable ones match nothing."""
    try:
        rx = compile_user_pattern(pattern)
    except PatternError:
        return
    for m in rx.finditer(_matchable(text)):
        if m.end() > m.start():
            yield m.start(), m.end()

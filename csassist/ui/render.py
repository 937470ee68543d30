"""The one safe-text path: every string that did not come from the code itself meets the screen here.

Customer messages, model drafts and their warning flags, KB titles and bodies, intent labels, file
names, config values, theme files and engine errors are all *data*.  Textual parses plain ``str`` as
content markup in many places (notifications, border titles, labels, palette hits), where a draft
containing ``https://h.example/[/]x`` raises ``MarkupError`` and ``[@click=app.quit]`` becomes a live
action.  So untrusted text reaches a widget only as one of:

* :func:`safe_text` -> ``rich.text.Text`` (bodies, rows, panels),
* :func:`safe_content` -> ``textual.content.Content`` (border titles, collapsible titles, labels, options),
* :func:`clean` -> a plain ``str`` for APIs that take ``markup=False`` (the app's ``notify`` always does).

All three first make controls, escape sequences, bidi overrides and lone surrogates visible and cap
the length (``csassist.core.sanitize``); none ever parses markup, so ``[Customer Name]`` stays
visible as typed.  Styles are only ever applied by code, and colours taken from user themes pass
:func:`theme_colour` first (a theme value is data too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.text import Text
from textual.color import Color, ColorParseError
from textual.content import Content

from csassist.core.sanitize import make_safe_for_terminal

BAR_WIDTH = 10
#: Longest notification text shown (a toast is a few lines; the full text stays in the logs).
NOTICE_MAX_CHARS = 2_000


def clean(text: object, *, max_chars: int = 20_000) -> str:
    """Untrusted text (or any value) as a harmless plain string: controls visible, length capped.

    For APIs that take ``markup=False``; never pass the result where markup is parsed.
    """
    return make_safe_for_terminal(text if isinstance(text, str) else str(text), max_chars=max_chars)


def safe_text(text: object, *, style: str = "", max_chars: int = 20_000) -> Text:
    """Untrusted text as a literal, harmless ``Text`` (controls visible, length capped)."""
    return Text(clean(text, max_chars=max_chars), style=style)


def safe_content(text: object, *, max_chars: int = 500) -> Content:
    """Untrusted text as literal Textual ``Content`` (for titles, labels and options, which parse a str)."""
    return Content(clean(text, max_chars=max_chars))


def one_line(text: object, width: int) -> str:
    """A single-line preview of untrusted text (newlines folded, cut with an ellipsis)."""
    flat = " ".join(clean(text, max_chars=max(width * 4, 64)).split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def theme_colour(variables: Mapping[str, str], name: str) -> str:
    """The theme variable ``name`` as a colour usable in a Rich style, or ``""`` if it is not a colour.

    Theme variables come from user files; used raw as a style, ``"link file:///etc/passwd"`` would
    plant a hyperlink and ``"[/]"`` would raise while rendering.  Only a parseable colour passes,
    normalised to ``#rrggbb``.
    """
    value = variables.get(name, "")
    if not value:
        return ""
    try:
        return Color.parse(value).hex6
    except (ColorParseError, ValueError, TypeError):
        return ""


def confidence_bar(probability: float, width: int = BAR_WIDTH) -> str:
    """``████░░░░░░`` for a probability in [0, 1] (clamped; NaN shows as empty)."""
    p = probability if probability == probability else 0.0  # NaN guard
    filled = round(max(0.0, min(1.0, p)) * width)
    return "█" * filled + "░" * (width - filled)


def format_wait(seconds: float | None) -> str:
    """Compact waiting time: ``""``, ``42s``, ``3m``, ``2h05``."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}"


def format_ms(value: float | None) -> str:
    """``12 ms`` / ``1.4 s`` / ``–`` for a latency in milliseconds."""
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def clock_time(ts: float) -> str:
    """Local ``HH:MM`` of an epoch timestamp; empty for 0 and for a time no clock can show (1e300, NaN, a
    nanosecond epoch): a feed's bad ``ts`` must cost a blank, never the app (issue 10)."""
    try:
        return time.strftime("%H:%M", time.localtime(ts)) if ts else ""
    except (OverflowError, OSError, ValueError, TypeError):
        return ""

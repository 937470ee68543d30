"""Turning engine values into Rich ``Text``: the one place customer text meets the screen.

Everything a customer (or a KB author, or a model) wrote goes through :func:`safe_text`, which first
makes control and escape sequences visible (``csassist.core.sanitize``) and then wraps the result in
``rich.text.Text``, so ``[bold red]`` or ``[link=file:///etc/passwd]`` stays literal text and is never
parsed as markup.  Styles are only ever applied to text written by this module.
"""

from __future__ import annotations

import time

from rich.text import Text

from csassist.core.sanitize import make_safe_for_terminal

BAR_WIDTH = 10


def safe_text(text: str, *, style: str = "", max_chars: int = 20_000) -> Text:
    """Untrusted text as a literal, harmless ``Text`` (controls visible, length capped)."""
    return Text(make_safe_for_terminal(text, max_chars=max_chars), style=style)


def one_line(text: str, width: int) -> str:
    """A single-line preview of untrusted text (newlines folded, cut with an ellipsis)."""
    flat = " ".join(make_safe_for_terminal(text, max_chars=max(width * 4, 64)).split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


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
    """Local ``HH:MM`` of an epoch timestamp (empty for 0)."""
    return time.strftime("%H:%M", time.localtime(ts)) if ts else ""

"""Make untrusted customer text harmless to show in a terminal, without changing what it says.

Customer messages arrive from files, stdin and HTTP: anyone can put terminal escape sequences in
them (clear the screen, rewrite the clipboard with OSC 52, plant OSC 8 hyperlinks, move the cursor),
Unicode bidi overrides that make text read differently from what it is, lone surrogates that crash
an encoder, or megabytes of text that drown the layout.  :func:`make_safe_for_terminal` turns every
such character into *visible* plain text and caps the length, so the agent sees exactly what was
sent - including the fact that someone tried an escape sequence - and the terminal never executes it.

Policy (chosen so that no information silently disappears and the result is idempotent):

* ``\\n`` and ``\\t`` are kept; ``\\r\\n`` and a lone ``\\r`` become ``\\n`` (a bare carriage return
  would let a line overwrite itself on screen).
* Other C0 controls and DEL become their Unicode *Control Pictures*: ESC (``\\x1b``) -> ``␛``,
  BEL -> ``␇``, NUL -> ``␀``, DEL -> ``␡``...  So ``"\\x1b[2J"`` is shown as ``"␛[2J"``; the rest of
  the sequence stays as the literal characters it was made of.
* C1 controls (U+0080-U+009F, e.g. the 8-bit CSI U+009B), the bidi embedding/override/isolate
  controls (U+202A-U+202E, U+2066-U+2069), U+2028/U+2029 separators and lone surrogates become
  ``<U+XXXX>`` (ASCII, so it is visibly "a code point was here").
* Text longer than ``max_chars`` (after the above) is cut and ends with
  ``"\\n… [truncated N chars]"``; the result including that marker is at most ``max_chars`` long.
* Rich/Textual markup such as ``[bold red]`` is *not* escaped here: the UI renders customer text as
  ``rich.text.Text`` (never as markup), which is what keeps it literal.
"""

from __future__ import annotations

import re

#: Default cap on characters shown for one message (about 5 screens of text).
DEFAULT_MAX_CHARS = 20_000
#: Below this cap there is no room for the truncation marker; the text is then cut without one.
_MIN_MARKER_ROOM = 48

_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_SEPARATORS = "\u2028\u2029"

# One pass over everything that needs replacing.  CRLF first so it turns into a single newline.
_UNSAFE = re.compile("\r\n?|[\x00-\x08\x0b-\x1f\x7f\x80-\x9f" + _BIDI_CONTROLS + _SEPARATORS + "\ud800-\udfff]")


def _replacement(match: re.Match[str]) -> str:
    """The visible stand-in for one unsafe character (or a CR/CRLF line break)."""
    char = match.group(0)
    if char[0] == "\r":
        return "\n"
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400..U+241F: ␀ ... ␛ ... ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


def truncation_marker(dropped: int) -> str:
    """The text appended when ``dropped`` characters were cut (kept in one place for the UI/tests)."""
    return f"\n… [truncated {dropped} chars]"


def make_safe_for_terminal(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return ``text`` with control/escape/bidi characters made visible and the length capped.

    Plain printable text (no controls, length within ``max_chars``) is returned unchanged, and
    applying the function twice gives the same result as applying it once.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    if not isinstance(text, str):
        text = str(text)
    safe = _UNSAFE.sub(_replacement, text)
    if len(safe) <= max_chars:
        return safe
    if max_chars < _MIN_MARKER_ROOM:
        return safe[:max_chars]
    # The marker's length depends on the number of digits of N <= len(safe): size it for the worst case
    # so the result never exceeds max_chars (which is what makes a second pass a no-op).
    room = len(truncation_marker(len(safe)))
    keep = max_chars - room
    return safe[:keep] + truncation_marker(len(safe) - keep)


def is_terminal_safe(text: str) -> bool:
    """Whether ``text`` contains nothing :func:`make_safe_for_terminal` would replace (length aside)."""
    return _UNSAFE.search(text) is None

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
  controls and marks (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C), U+2028/U+2029
  separators, invisible characters that can hide text (U+200B, U+2060-U+2064, U+FEFF,
  U+FFF9-U+FFFB, and the tag block U+E0000-U+E007F used for "invisible prompt" smuggling) and lone
  surrogates become ``<U+XXXX>`` (ASCII, so it is visibly "a code point was here").  ZWJ/ZWNJ
  stay: emoji sequences and several scripts need them.
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

#: Code point ranges (inclusive) that are never passed to the terminal as they are.
_UNSAFE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x08),
    (0x0B, 0x1F),  # C0 except \t and \n (\r handled as a line break)
    (0x7F, 0x9F),  # DEL and C1
    # bidi embeddings/overrides/isolates and marks
    (0x061C, 0x061C),
    (0x200E, 0x200F),
    (0x202A, 0x202E),
    (0x2066, 0x2069),
    (0x2028, 0x2029),  # line/paragraph separators
    # Invisible characters that can hide text from the agent (zero-width space, word joiner,
    # invisible operators, BOM, interlinear annotations) and the "tag" block used to smuggle
    # invisible instructions.  ZWJ/ZWNJ (U+200D/U+200C) stay: emoji and several scripts need them.
    (0x200B, 0x200B),
    (0x2060, 0x2064),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0xE0000, 0xE007F),
    (0xD800, 0xDFFF),  # lone surrogates (from JSON "\ud800"): UTF-8 cannot encode them
)


def _visible(code: int) -> str:
    """The visible stand-in for one unsafe code point."""
    if code == 0x0D:
        return "\n"
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400..U+241F: ␀ ... ␛ ... ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"  # 4-6 hex digits


# str.translate with a table runs in C: about twice as fast as a regex with a callback on hostile
# floods, and five times on plain text.  CRLF is folded to LF before the table turns lone CRs into LF.
_TABLE: dict[int, str] = {code: _visible(code) for low, high in _UNSAFE_RANGES for code in range(low, high + 1)}
_TABLE[0x0D] = "\n"
_UNSAFE = re.compile(
    "[\r" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in _UNSAFE_RANGES) + "]"
)


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
    safe = text.replace("\r\n", "\n").translate(_TABLE)
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


#: Shown in place of a line break inside text printed on one line (a table cell, a warning).
LINE_BREAK_MARK = "\u23ce"


def safe_line(text: object, *, max_chars: int = 2_000) -> str:
    """Untrusted text for one line of CLI output: made terminal-safe, line breaks shown as ``⏎``.

    The CLI prints KB titles, file names, config values and problems as plain text; without this
    an ESC in a file name or an OSC 52 in a KB article reached the terminal raw (issue 10.11).
    """
    safe = make_safe_for_terminal(str(text), max_chars=max_chars)
    return safe.replace("\n", LINE_BREAK_MARK).replace("\t", " ")


def _json_escape(code: int) -> str:
    """``\\uXXXX`` for ``code`` (a UTF-16 surrogate pair above U+FFFF), as JSON writes escapes."""
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


# json.dumps(ensure_ascii=False) already escapes C0 controls; these are the rest of the unsafe set.
_JSON_TABLE: dict[int, str] = {
    code: _json_escape(code) for low, high in _UNSAFE_RANGES for code in range(max(low, 0x7F), high + 1)
}


def terminal_safe_json(payload: object, **dumps_options: object) -> str:
    """``json.dumps`` for the CLI's ``--json`` output: readable UTF-8, but nothing a terminal acts on.

    ``ensure_ascii=False`` keeps accents and emoji readable and escapes C0 controls, but it passed
    C1 controls (U+009B is an 8-bit CSI), bidi overrides (U+202E) and invisible "tag" characters
    through raw.  They only ever occur inside JSON strings, so replacing each with its ``\\uXXXX``
    escape keeps the document valid and the decoded value identical (a JSON consumer sees the same
    text; a person reading the terminal sees the escape).
    """
    import json

    return json.dumps(payload, ensure_ascii=False, **dumps_options).translate(_JSON_TABLE)  # type: ignore[arg-type]

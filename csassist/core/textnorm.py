"""One normal form for every text that enters csassist: webhook, feeds, stdin, KB files, CLI arguments.

Text from outside arrives in shapes the engine cannot take as is: a JavaScript bridge that cuts an
emoji in half sends ``"\\ud83d"`` (a lone surrogate, which UTF-8 cannot encode, so the tokenizer
raised and analysis stopped for good), a command-line argument with invalid UTF-8 comes in with
``surrogateescape`` code points, Windows tools send ``\\r\\n``, macOS file names and some keyboards send
decomposed accents (``e`` + U+0301) that do not compare equal to the composed ``é`` the KB uses.
:func:`normalize_text` fixes exactly those, at the door, so nothing further in has to care:

* lone surrogates become U+FFFD (the replacement character: visibly "something was here"); a valid
  surrogate *pair* left in a ``str`` is joined into the character it encodes;
* ``\\r\\n`` and a lone ``\\r`` become ``\\n``; NUL is dropped (never meaningful in a message, and it
  truncates strings in C libraries);
* the result is in Unicode NFC.

Everything else, terminal escapes included, is kept: the agent should *see* that someone sent an
escape sequence, which :func:`csassist.core.sanitize.make_safe_for_terminal` makes visible at display
time.  The function is idempotent and returns plain ASCII text unchanged at almost no cost.
"""

from __future__ import annotations

import unicodedata


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point (UTF-8 encoding is the fast C-level check)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalize_text(text: str) -> str:
    """``text`` in csassist's normal form (see the module docstring); ``str()`` of a non-string."""
    if not isinstance(text, str):
        text = str(text)
    if text.isascii():
        if "\r" not in text and "\x00" not in text:
            return text
    elif _has_surrogate(text):
        # UTF-16 round trip: joins valid pairs, and "replace" turns each lone half into U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text

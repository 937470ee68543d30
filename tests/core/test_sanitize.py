"""Untrusted text is made terminal-safe: no escapes survive, nothing else changes, idempotent."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from csassist.core.sanitize import (
    DEFAULT_MAX_CHARS,
    is_terminal_safe,
    make_safe_for_terminal,
    truncation_marker,
)

C1 = [chr(c) for c in range(0x80, 0xA0)]
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)]
INVISIBLE = [
    chr(c) for c in (0x200B, *range(0x2060, 0x2065), 0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0xE0000, 0xE0041, 0xE007F)
]

# Text a terminal must never see raw: ANSI/OSC/DCS fragments and every forbidden code point.
hostile_pieces = st.sampled_from(
    [
        "\x1b[2J",
        "\x1b[H",
        "\x1b]52;c;ZXZpbA==\x07",
        "\x1b]8;;file:///etc/passwd\x1b\\click\x1b]8;;\x1b\\",
        "\x1bP+q544e\x1b\\",
        "\x9b31m",
        "\x07",
        "\x00",
        "\r",
        "\r\n",
        "\x7f",
        "\ud800",
        "\u2028",
        *C1,
        *BIDI,
        *INVISIBLE,
        "[bold red]x[/]",
        "[link=file:///etc/passwd]y[/link]",
    ]
)
any_text = st.lists(st.one_of(st.text(max_size=30), hostile_pieces), max_size=30).map("".join)
plain_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
        blacklist_characters="".join(BIDI) + "\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\ufff9\ufffa\ufffb",
    )
    | st.sampled_from(["\n", "\t"]),
    max_size=200,
).filter(lambda t: not any(0xE0000 <= ord(ch) <= 0xE007F for ch in t))


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_output_never_contains_escape_bel_c1_bidi_or_surrogates(text: str) -> None:
    """Whatever comes in, the output has no character a terminal would interpret."""
    out = make_safe_for_terminal(text)
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\x00" not in out
    assert not any(ch in out for ch in C1)
    assert not any(ch in out for ch in BIDI)
    assert not any(ch in out for ch in INVISIBLE)
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in out)
    assert all(ch in "\n\t" or ord(ch) >= 0x20 for ch in out)
    assert is_terminal_safe(out)
    out.encode("utf-8")  # never raises (no lone surrogates)


@settings(max_examples=300, deadline=None)
@given(any_text, st.integers(min_value=1, max_value=300))
def test_idempotent(text: str, max_chars: int) -> None:
    """A second pass changes nothing, with or without truncation."""
    once = make_safe_for_terminal(text, max_chars=max_chars)
    assert make_safe_for_terminal(once, max_chars=max_chars) == once
    assert len(once) <= max_chars


@settings(max_examples=300, deadline=None)
@given(plain_text)
def test_plain_text_is_unchanged(text: str) -> None:
    """Ordinary text (any script, emoji, tabs, newlines, markup-looking brackets) passes through."""
    assert make_safe_for_terminal(text) == text


def test_escape_sequences_are_made_visible_not_executed() -> None:
    """ESC and BEL become control pictures; the rest of the sequence stays as literal text."""
    assert make_safe_for_terminal("hi\x1b[2Jthere") == "hi␛[2Jthere"
    assert make_safe_for_terminal("\x1b]52;c;ZXZpbA==\x07") == "␛]52;c;ZXZpbA==␇"
    link = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
    assert make_safe_for_terminal(link) == "␛]8;;https://evil.example␛\\click␛]8;;␛\\"
    assert make_safe_for_terminal("a\x9b2Jb") == "a<U+009B>2Jb"
    assert make_safe_for_terminal("del\x7f nul\x00") == "del␡ nul␀"


def test_line_endings_and_bidi() -> None:
    """CR/CRLF become newlines; bidi overrides are shown as code points."""
    assert make_safe_for_terminal("a\r\nb\rc\nd\te") == "a\nb\nc\nd\te"
    assert make_safe_for_terminal("pay \u202eexe.txt") == "pay <U+202E>exe.txt"
    assert make_safe_for_terminal("\u2066x\u2069") == "<U+2066>x<U+2069>"


def test_invisible_characters_become_visible_but_emoji_sequences_survive() -> None:
    """Hidden text (zero-width space, tag-block smuggling) is exposed; ZWJ emoji stay intact."""
    smuggled = "hi" + "".join(chr(0xE0000 + ord(c)) for c in "ok")
    assert make_safe_for_terminal(smuggled) == "hi<U+E006F><U+E006B>"
    assert make_safe_for_terminal("pay\u200bpal") == "pay<U+200B>pal"
    family = "👨\u200d👩\u200d👧 and \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert make_safe_for_terminal(family) == family


def test_lone_surrogate_from_json_becomes_visible() -> None:
    """JSON can smuggle a lone surrogate; it would crash the UTF-8 writer, so it is replaced."""
    text = json.loads('"bad \\ud800 char"')
    assert make_safe_for_terminal(text) == "bad <U+D800> char"


def test_rich_markup_is_left_alone() -> None:
    """Escaping markup is the renderer's job (rich.text.Text); here it must stay byte-identical."""
    text = "[bold red]ALERT[/] [link=file:///etc/passwd]open[/link] \\[x]"
    assert make_safe_for_terminal(text) == text


def test_large_text_is_truncated_with_marker() -> None:
    """50 KB of text is cut to max_chars with a clear marker that says how much was dropped."""
    text = "x" * 50_000
    out = make_safe_for_terminal(text)
    assert len(out) <= DEFAULT_MAX_CHARS
    assert out.endswith(" chars]")
    kept = out.index("\n… [truncated ")
    dropped = int(out.rsplit("truncated ", 1)[1].split()[0])
    assert kept + dropped == 50_000
    assert out == "x" * kept + truncation_marker(dropped)


def test_tiny_limit_cuts_without_marker() -> None:
    """A limit too small for the marker still caps the length."""
    assert make_safe_for_terminal("abcdefghij", max_chars=4) == "abcd"


def test_non_string_input_is_stringified() -> None:
    """A number that slipped through a JSON feed is shown, not a crash."""
    assert make_safe_for_terminal(12345) == "12345"  # type: ignore[arg-type]


def test_megabytes_of_hostile_text_are_handled_quickly() -> None:
    """A flood (5 MB of escape sequences) must not stall the UI thread: linear time, capped output."""
    import time

    flood = "\x1b[2J\x1b]52;c;QUFB\x07 [bold]x[/] \u202e" * 200_000
    start = time.perf_counter()
    out = make_safe_for_terminal(flood)
    elapsed = time.perf_counter() - start
    assert len(out) <= DEFAULT_MAX_CHARS and "\x1b" not in out and out.endswith(" chars]")
    # ~1 s quiet; a super-linear pass over 5 MB would take minutes, so the bound leaves room for a busy CI
    assert elapsed < 15.0, f"took {elapsed:.2f}s"


def test_hostile_corpus_is_made_terminal_safe() -> None:
    """Every text of the shared hostile corpus comes out free of escapes, controls, bidi and surrogates."""
    from tests.hostile_corpus import HOSTILE_TEXTS

    for text in HOSTILE_TEXTS:
        out = make_safe_for_terminal(text)
        assert is_terminal_safe(out)
        assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out
        assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in out)
        out.encode("utf-8")  # encodable: nothing left that a terminal or a tokenizer would choke on


def test_terminal_safe_json_is_valid_json_with_the_same_value_and_no_unsafe_characters() -> None:
    import json

    from csassist.core.sanitize import _UNSAFE_RANGES, terminal_safe_json

    payload = {"text": "é 😀 \x1b[2J \x9b \u202e \u2066 \u200b \ufeff \U000e0041 \ud800", "n": [1, "\u2028"]}
    out = terminal_safe_json(payload, indent=1)
    assert json.loads(out) == payload
    assert not any(low <= ord(c) <= high for c in out for low, high in _UNSAFE_RANGES if c not in "\n")
    assert "é 😀" in out  # readable text stays readable

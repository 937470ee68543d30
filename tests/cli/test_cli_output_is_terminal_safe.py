"""Issue 10.11: the CLI never prints an escape sequence, bidi override or control character it read.

KB text, file names, customer messages and config values are untrusted: ``csassist search`` showed
OSC 52 / ESC[2J / U+202E from KB articles and ``csassist index`` printed an ESC in a file name raw.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csassist.cli import EXIT_PARTIAL, main
from tests.hostile_corpus import ESCAPES, UNICODE_TRICKS

#: What must never reach the terminal as is (ESC, BEL, C1 CSI, RLO, isolates, zero-width).
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x00", "\u202e", "\u2066", "\u200b")
HOSTILE_TITLE = "Refund \x1b]52;c;ZXZpbA==\x07 \x1b[2J\u202eexe.txt"


def _assert_clean(text: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, f"{bad!r} reached the terminal"


@pytest.mark.real_model
def test_index_and_search_show_hostile_kb_text_and_file_names_as_visible_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], real_encoder
) -> None:  # type: ignore[no-untyped-def]
    kb = tmp_path / "kb"
    kb.mkdir()
    hostile = [v for _, v in ESCAPES + UNICODE_TRICKS[:3] if "\x00" not in v]  # NUL makes it a binary file
    body = "Refunds reach your account within 5 days. " + " ".join(hostile)
    (kb / "refunds.md").write_text(f"---\nid: refund\ntitle: {HOSTILE_TITLE!r}\n---\n{body}\n")
    (kb / "bad\x1b[31mname.md").write_text("no front matter here\n")  # a problem that names the file
    out_dir = tmp_path / "index"

    assert main(["index", str(kb), "--out", str(out_dir)]) == EXIT_PARTIAL
    shown = capsys.readouterr()
    _assert_clean(shown.out + shown.err)
    assert "bad␛[31mname.md" in shown.out  # the name is still recognisable

    assert main(["search", "when is my refund \x1b[2J coming", "--index", str(out_dir)]) == 0
    shown = capsys.readouterr()
    _assert_clean(shown.out + shown.err)
    table = shown.out.split("\n", 1)[1]  # below the query line
    assert "␛" in table  # the hostile title/snippet is shown, visibly (the table wraps cells)


def test_analyze_plain_output_shows_escapes_visibly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "order LK-204817 \x1b[2J\x1b]52;c;eA==\x07 \u202eevil \x9b31m"]) == 0
    out = capsys.readouterr().out
    _assert_clean(out)
    assert "␛[2J" in out and "LK-204817" in out


def test_json_output_escapes_c1_bidi_and_tag_characters_and_decodes_to_the_same_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--json`` keeps accents readable but escapes what a terminal would act on (valid JSON, same value)."""
    import json

    message = "café order LK-204817 \x9b31m \u202eevil \U000e0041 \u2066x\u2069 \x1b[2J"
    assert main(["analyze", message, "--json"]) == 0
    out = capsys.readouterr().out
    _assert_clean(out)
    assert "\U000e0041" not in out and "café" in out
    assert json.loads(out)["redacted_text"] == message  # nothing to redact: the same text, escaped only in transit


def test_config_warnings_are_printed_safely(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__import__("os").environ["CSASSIST_HOME"]) / "config"
    config.mkdir(parents=True)
    (config / "config.toml").write_text('[company]\n"evil\\u001b]0;title\\u0007" = 1\n')
    assert main(["analyze", "hello"]) == 0
    shown = capsys.readouterr()
    _assert_clean(shown.err)
    assert "unknown key" in shown.err


def test_error_messages_that_quote_a_file_name_are_safe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "only\x1b[2Jbroken.md").write_text("no front matter\n")
    assert main(["index", str(kb), "--out", str(tmp_path / "i")]) == 1  # nothing usable: an error
    shown = capsys.readouterr()
    _assert_clean(shown.out + shown.err)
    assert "only␛[2Jbroken.md" in shown.err

"""`csassist analyze`: JSON and plain output, with and without an intent model, bad input."""

from __future__ import annotations

import json

import pytest

from csassist import paths
from csassist.cli import main

MSG = "This is the third time!!! Order LK-204817 never came, mail me at jo@example.com or +31 6 12345678"


def test_analyze_without_index_still_reports_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", MSG, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "csassist index" in out["note"] and out["top"] == [] and out["intent"] is None
    types = {e["type"]: e["value"] for e in out["entities"]}
    assert types["order_id"] == "LK-204817" and types["email"] == "jo@example.com" and types["phone"] == "+31612345678"
    assert out["urgency"]["level"] in ("elevated", "urgent") and out["urgency"]["reasons"]
    assert "jo@example.com" not in out["redacted_text"] and "[EMAIL_1]" in out["redacted_text"]


def test_analyze_plain_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "[bold]refund[/bold] my order #204817"]) == 0
    out = capsys.readouterr().out
    assert "intent:" in out and "run `csassist index`" in out
    assert "[bold]refund[/bold]" in out  # customer text stays text, never markup
    assert "order_id" in out and "204817" in out


@pytest.mark.parametrize("text", ["", "   "])
def test_analyze_empty_message_is_clear_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", text]) == 1
    assert "empty" in capsys.readouterr().err


@pytest.mark.real_model
def test_analyze_with_real_head(real_encoder, capsys: pytest.CaptureFixture[str]) -> None:
    from csassist.core.learn.intent_head import fit_intent_head
    from tests.core.test_intent import _examples

    fit_intent_head(_examples(), real_encoder, paths.index_dir() / "intent")
    assert main(["analyze", "I want a refund for the broken vase", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["intent"] == "refund" and len(out["top"]) == 3 and out["note"] is None
    assert main(["analyze", "😀🎉 где мой заказ 注文 " + "x" * 100_000, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(0.0 <= s["probability"] <= 1.0 for s in out["top"])


def test_analyze_normalises_an_argument_with_invalid_utf8(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10.1: argv bytes that are not UTF-8 arrive as surrogate escapes; they become U+FFFD."""
    assert main(["analyze", "order LK-204817 \udcff\udcfe cafe\u0301", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["redacted_text"] == "order LK-204817 \ufffd\ufffd caf\u00e9"
    assert [e["value"] for e in out["entities"]] == ["LK-204817"]


def test_analyze_reads_the_customers_own_words(capsys: pytest.CaptureFixture[str]) -> None:
    mail = ("Order LK-204817 never came.\n\nKind regards,\nJo Smith\n+31 6 12345678\n\n"
            "On Mon, 3 Mar 2025 at 10:12, Larkspur <care@larkspur.example> wrote:\n> Returns are free for 30 days.")
    assert main(["analyze", mail, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["own_words"] == "Order LK-204817 never came."
    assert [e["value"] for e in out["entities"]] == ["LK-204817"]  # not the signature's phone or our address
    assert "[PHONE_1]" in out["redacted_text"]  # the whole message is still redacted for display
    assert main(["analyze", mail]) == 0
    assert "read only: Order LK-204817 never came." in capsys.readouterr().out

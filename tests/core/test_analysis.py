"""Analyzer: all four answers in one call, with and without an intent model."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from csassist.core.learn.intent_head import fit_intent_head
from csassist.core.types import Message
from csassist.core.understand.analysis import NO_MODEL_PREDICTION, Analyzer
from csassist.core.understand.intent_format import load_head
from tests.core.test_intent import _examples


def test_analyze_with_head(fake_encoder, tmp_path: Path) -> None:
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    analyzer = Analyzer(load_head(tmp_path / "intent", fake_encoder), order_patterns=[r"\bZZ\d{4}\b"])
    result = analyzer.analyze(
        "Please refund my purchase ZZ1234 from yesterday, call +44 7700 900123!!!", now=datetime(2026, 11, 28)
    )
    assert result.intent.top[0].intent == "refund"
    values = {e.type: e.value for e in result.entities}
    assert values["order_id"] == "ZZ1234" and values["date"] == "2026-11-27" and values["phone"] == "+447700900123"
    assert result.urgency.level == "elevated"
    assert "[PHONE_1]" in result.redacted_text and "7700" not in result.redacted_text
    assert result.latency_ms > 0


def test_analyze_without_model() -> None:
    history = [Message("c", "customer", "hello?"), Message("c", "customer", "anyone?")]
    result = Analyzer(None).analyze("still waiting", history)
    assert result.intent == NO_MODEL_PREDICTION and result.intent.intent is None
    assert not result.intent.out_of_scope and result.intent.model == ""
    assert result.urgency.level == "elevated"


def test_analyze_empty_text(fake_encoder, tmp_path: Path) -> None:
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    result = Analyzer(load_head(tmp_path / "intent", fake_encoder)).analyze("")
    assert result.intent.top == () and result.intent.out_of_scope
    assert result.entities == () and result.redacted_text == "" and result.urgency.level == "normal"

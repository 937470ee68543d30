"""A customer turn is every message since the agent last wrote: analysis and retrieval see all of it."""

from __future__ import annotations

from collections.abc import Sequence

from csassist.core.pipeline import Assistant, customer_turn_text
from csassist.core.types import Analysis, CancelToken, Message
from csassist.settings import Settings
from tests.core.gen_fakes import FakeGenerator
from tests.core.test_pipeline import FakeAnalyzer, FakeRetriever, P


def _m(speaker: str, text: str) -> Message:
    return Message("c1", speaker, text)  # type: ignore[arg-type]


def test_turn_text_joins_pending_customer_messages_newest_first() -> None:
    history = [
        _m("customer", "hi"),
        _m("agent", "Hello! How can I help?"),
        _m("customer", "my order LK-204817 arrived smashed"),
        _m("customer", "I want a refund"),
    ]
    turn = customer_turn_text("photos attached, £42 in total", history)
    assert turn.splitlines() == ["photos attached, £42 in total", "I want a refund", "my order LK-204817 arrived smashed"]


def test_turn_text_stops_at_the_agent_and_at_the_message_cap() -> None:
    assert customer_turn_text("thanks", [_m("customer", "old"), _m("agent", "done")]) == "thanks"
    assert customer_turn_text("only", []) == "only"
    many = [_m("customer", f"m{i}") for i in range(10)]
    assert customer_turn_text("last", many, max_messages=3).splitlines() == ["last", "m9", "m8"]


def test_retrieve_and_analyze_see_the_whole_turn() -> None:
    retriever = FakeRetriever()
    seen: list[str] = []

    class RecordingAnalyzer(FakeAnalyzer):
        def analyze(self, text: str, history: Sequence[Message]) -> Analysis:
            seen.append(text)
            return super().analyze(text, history)

    a = Assistant(Settings(), retriever=retriever, analyzer=RecordingAnalyzer())
    history = [_m("customer", "3 of my 6 mugs are smashed")]
    a.retrieve("photos attached", 3, history)
    a.analyze("photos attached", history)
    assert retriever.queries == [("photos attached\n3 of my 6 mugs are smashed", 3)]
    assert seen == ["photos attached\n3 of my 6 mugs are smashed"]


def test_extractive_suggestion_records_the_prompt_for_the_learning_loop() -> None:
    a = Assistant(Settings(), generator=FakeGenerator(), analyzer=FakeAnalyzer())
    msg = _m("customer", "my order arrived broken, I want a refund")
    updates = list(a.suggest(msg, [], None, [P], CancelToken()))
    slot0 = next(u for u in updates if u.slot == 0 and u.done)
    generated = next(u for u in updates if u.slot == 1 and u.done)
    assert slot0.suggestion is not None and generated.suggestion is not None
    assert slot0.suggestion.prompt and slot0.suggestion.prompt == generated.suggestion.prompt
    assert "arrived broken" in slot0.suggestion.prompt

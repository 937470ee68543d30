"""Urgency on hand-written examples of each reason (and calm messages that must stay normal)."""

from __future__ import annotations

import pytest

from csassist.core.types import Message
from csassist.core.understand.urgency import assess_urgency


@pytest.mark.parametrize(
    "text",
    [
        "Hi, where is my order LK-204817? Thanks!",
        "Could you tell me your return policy for lamps?",
        "I bought a gift for my daughter, can you gift-wrap it?",
        "I have an issue with the courteous pursuit of my parcel",  # 'sue'/'court' inside words
        "OK",
        "",
    ],
)
def test_calm_messages_are_normal(text: str) -> None:
    assert assess_urgency(text).level == "normal"
    assert assess_urgency(text).reasons == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("WHERE IS MY ORDER, I PAID TWO WEEKS AGO", "anger: shouting in capitals"),
        ("Where is my parcel!!!", "anger: repeated exclamation marks"),
        ("where is the damn parcel", "anger: swearing (damn)"),
        ("This is unacceptable, where is my parcel", "anger: unacceptable"),
        ("Please help, I'm desperate, the wedding is on Saturday", "distress: please help"),
        ("If this isn't sorted I will cancel my subscription", "cancel threat: cancel my subscription"),
        ("This is the third time I write about this order", "repeated contact: third time"),
    ],
)
def test_each_elevated_reason(text: str, reason: str) -> None:
    result = assess_urgency(text)
    assert result.level == "elevated", result
    assert reason in result.reasons


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("The lamp started to make sparks when I plugged it in", "safety: sparks"),
        ("The kettle caught fire", "safety: caught fire"),
        ("There was smoke coming from the charger", "safety: smoke"),
        ("My hand got burnt by the heater", "safety: burnt"),
        ("The glass shattered and caused an injury", "safety: injury"),
        ("I will talk to my lawyer about this", "legal threat: lawyer"),
        ("I'm going to sue you", "legal threat: sue"),
        ("see you in court", "legal threat: court"),
        ("I'm complaining to the ombudsman", "legal threat: ombudsman"),
        ("I'll file a chargeback with my card company", "chargeback threat: chargeback"),
        ("I will dispute the charge", "chargeback threat: dispute the charge"),
    ],
)
def test_each_urgent_reason(text: str, reason: str) -> None:
    result = assess_urgency(text)
    assert result.level == "urgent", result
    assert reason in result.reasons


def test_child_amplifies_safety() -> None:
    result = assess_urgency("The toy has a loose battery and my toddler nearly swallowed it")
    assert result.level == "urgent"
    assert "safety: toddler involved" in result.reasons


def test_two_elevated_signals_make_urgent() -> None:
    result = assess_urgency("Third time asking. I will cancel my account.")
    assert result.level == "urgent"
    assert len(result.reasons) == 2


def test_many_anger_cues_count_once() -> None:
    result = assess_urgency("WHERE IS MY STUFF!!! THIS IS RIDICULOUS")
    assert result.level == "elevated"
    assert len(result.reasons) >= 2


def _msg(speaker: str, text: str) -> Message:
    return Message(conversation_id="c1", speaker=speaker, text=text)  # type: ignore[arg-type]


def test_unanswered_history_flags_repeated_contact() -> None:
    history = [_msg("customer", "hello?"), _msg("agent", "Hi!"), _msg("customer", "where is it"),
               _msg("customer", "any news?")]
    result = assess_urgency("hello??", history)
    assert result.level == "elevated"
    assert "repeated contact: 3 customer messages without a reply" in result.reasons
    # the same message already in the history is not counted twice
    assert assess_urgency("any news?", history[:-1] + [_msg("customer", "any news?")]).level == "normal"
    # an agent reply resets the count
    assert assess_urgency("thanks", history + [_msg("agent", "on its way")]).level == "normal"


def test_sorting_rank() -> None:
    levels = [assess_urgency(t) for t in ("ok", "WHY IS THIS SO SLOW!!!", "it caught fire")]
    assert [u.rank for u in levels] == [0, 1, 2]


def test_huge_and_odd_text() -> None:
    assert assess_urgency("😡" * 1000).level == "normal"
    assert assess_urgency("fire " * 20000).level == "urgent"

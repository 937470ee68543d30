"""Hand-over summaries: every item traceable to the message it quotes; goal, facts, said, promised, open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.cli import main
from csassist.core.io.conversation_files import read_conversations
from csassist.core.reply.summary import HandoverSummary, SummaryItem, summarize
from csassist.core.types import Message

DEMO = Path(__file__).resolve().parents[2] / "kb" / "conversations" / "demo.jsonl"


def conversations() -> dict[str, list[Message]]:
    messages, problems = read_conversations(DEMO)
    assert not problems
    out: dict[str, list[Message]] = {}
    for m in messages:
        out.setdefault(m.conversation_id, []).append(m)
    return out


def items(summary: HandoverSummary) -> list[SummaryItem]:
    return [*([summary.goal] if summary.goal else []), *summary.facts, *summary.said, *summary.promised, *summary.open]


@pytest.mark.parametrize("cid", list(conversations()))
def test_every_item_quotes_its_message(cid: str) -> None:
    """Traceability on every demo conversation: the quoted words are in the message the item points to."""
    turns = conversations()[cid]
    summary = summarize(turns)
    assert summary.goal is not None and summary.goal.speaker == "customer"
    for item in items(summary):
        message = turns[item.message_index]
        assert item.speaker == message.speaker and item.ts == message.ts
        quoted = item.text.removeprefix("waiting for the customer: ").split(" (")[0].rstrip("…")
        assert quoted in " ".join(message.text.split()), (cid, item)


def test_refund_conversation_sections() -> None:
    turns = [
        Message("c", "customer", "Hi, order #518330 arrived and 3 mugs are smashed.", ts=10.0, customer="Oliver"),
        Message("c", "customer", "I want a refund for the broken ones.", ts=11.0, customer="Oliver"),
        Message("c", "agent", "Hi Oliver, so sorry! Could you send a photo of the box? Then I'll refund the mugs.", ts=20.0),
        Message("c", "customer", "Here it is. They were £14 each, so £42. When will I see the money?", ts=30.0),
    ]
    s = summarize(turns, intent="damaged_item")
    assert s.intent == "damaged_item" and s.goal == SummaryItem("I want a refund for the broken ones.", 1, 11.0, "customer")
    assert [(f.kind, f.text, f.message_index) for f in s.facts] == [
        ("order_id", "#518330 (518330)", 0), ("money", "£14 (14.00 GBP)", 3), ("money", "£42 (42.00 GBP)", 3)]
    assert [i.text for i in s.said] == ["Could you send a photo of the box?"]
    assert [(i.text, i.message_index) for i in s.promised] == [("Then I'll refund the mugs.", 2)]
    assert [i.text for i in s.open] == ["When will I see the money?"]
    text = s.to_text()
    assert "Goal: damaged_item" in text and "[#3]" in text and "Then I'll refund the mugs. [#2]" in text


def test_open_items_when_the_agent_spoke_last_and_when_only_thanks_follow() -> None:
    asked = [Message("c", "customer", "My parcel is late."), Message("c", "agent", "Hello! What is your order number?")]
    assert [i.text for i in summarize(asked).open] == ["waiting for the customer: What is your order number?"]
    thanked = [*asked, Message("c", "agent", "Found it, it ships today."), Message("c", "customer", "Thank you so much!")]
    assert summarize(thanked).open == ()


def test_empty_conversation_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one message"):
        summarize([])


def test_cli_json_picks_one_conversation_and_traces_items(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summarize", "--conversation", str(DEMO), "--id", "c-1005", "--json", "--no-intent"]) == 0
    out = json.loads(capsys.readouterr().out)
    turns = conversations()["c-1005"]
    assert out["conversation_id"] == "c-1005" and out["messages"] == len(turns)
    assert any(f["kind"] == "money" and f["text"].startswith("€129.00") for f in out["facts"])
    for section in ("facts", "said", "promised", "open"):
        for item in out[section]:
            assert set(item) >= {"text", "message_index", "ts", "speaker"}
            assert turns[item["message_index"]].speaker == item["speaker"]


def test_cli_unknown_id_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summarize", "--conversation", str(DEMO), "--id", "nope", "--no-intent"]) == 1
    err = capsys.readouterr().err
    assert "no conversation with id 'nope'" in err and "c-1001" in err

"""The no-model suggestion: greeting, order number, key sentences, closing, sources."""

from __future__ import annotations

from csassist.core.reply.extractive import extractive_reply, key_sentences, split_sentences
from csassist.core.types import Analysis, Entity, IntentPrediction, Passage, Urgency
from csassist.settings import CompanySettings

BODY = """# Damaged item refund

If your item arrived damaged, we are sorry! Please send us a photo of the damage.
Once we receive it, we refund the full price within 5 business days.

- Refunds go back to the original payment method.
- You do not need to return the broken item.

Our warehouse is closed on public holidays.
"""
P = Passage("damaged-item-refund#0", "damaged-item-refund", "Damaged item refund", BODY, "refunds.md", 0.9)


def analysis_with_order(order: str) -> Analysis:
    return Analysis(IntentPrediction((), False, 0.5), (Entity("order_id", order, 9, 14, order),), Urgency(), "")


def test_split_sentences_drops_markdown() -> None:
    sents = split_sentences(BODY)
    assert sents[0] == "If your item arrived damaged, we are sorry!"
    assert "Refunds go back to the original payment method." in sents
    assert not any(s.startswith("#") or s.startswith("-") for s in sents)


def test_key_sentences_prefers_overlap_and_keeps_order() -> None:
    chosen = key_sentences(BODY, "my order arrived damaged, I want a refund of the full price")
    assert len(chosen) <= 4
    assert chosen == sorted(chosen, key=split_sentences(BODY).index)
    assert any("refund the full price" in s for s in chosen)
    assert not any("warehouse" in s for s in chosen)


def test_reply_with_name_order_and_agent() -> None:
    company = CompanySettings(name="Larkspur & Co.", agent_name="Sam")
    text, ids = extractive_reply(
        "my order 12345 arrived broken, refund?",
        [P],
        analysis_with_order("12345"),
        company,
        customer_name="Dana Whitfield",
    )
    assert text.startswith("Hi Dana, thank you for getting in touch about order 12345.")
    assert "refund the full price" in text
    assert text.rstrip().endswith("Best regards,\nSam")
    assert ids == ("damaged-item-refund",)


def test_reply_without_passages_or_name() -> None:
    text, ids = extractive_reply("hello?", [], None, CompanySettings(name="Acme"), customer_name=None)
    assert text.startswith("Hello, thank you for getting in touch.")
    assert "get back to you" in text and text.endswith("the Acme team")
    assert ids == ()


def test_odd_customer_name_is_not_used() -> None:
    text, _ = extractive_reply("hi", [P], None, CompanySettings(), customer_name="[bold]x[/bold]")
    assert text.startswith("Hello,")


def test_abbreviations_do_not_split_sentences() -> None:
    sents = split_sentences("1. your **order number** (e.g. LK-204817 — six digits are fine);\nThen wait.")
    assert sents[0] == "your order number (e.g. LK-204817 — six digits are fine)."


def test_passage_tagged_with_detected_intent_wins_among_top_three() -> None:
    from csassist.core.reply.extractive import choose_passage
    from csassist.core.types import IntentScore

    track = Passage("track#0", "track", "Track", "Track it here.", "t.md", 0.9, intents=("track_order",))
    missing = Passage(
        "missing#0", "missing", "Missing", "We will investigate.", "m.md", 0.8, intents=("missing_delivery",)
    )
    analysis = Analysis(IntentPrediction((IntentScore("missing_delivery", 0.8),), False, 0.3), (), Urgency(), "")
    assert choose_passage([track, missing], analysis) is missing
    assert choose_passage([track, missing], None) is track
    _, ids = extractive_reply("parcel never came", [track, missing], analysis, CompanySettings())
    assert ids == ("missing",)


def test_weak_matches_give_a_holding_answer_not_an_unrelated_article() -> None:
    """A passage that only shares words with the message (low cosine) is not pasted into the reply."""
    weak = Passage("stock#0", "stock", "Out of stock items", "We see the same stock as the website.", "s.md", 0.2)
    text, ids = extractive_reply("Oh wow, thank you so much!", [weak], None, CompanySettings())
    assert ids == ()
    assert "same stock" not in text
    assert "get back to you" in text


def test_a_card_typed_as_order_number_is_never_echoed() -> None:
    """Issue 10.5: "my card #5500000000000004" came back as "about order 5500000000000004"."""
    from csassist.core.understand.analysis import Analyzer

    message = "my card #5500000000000004 was declined"
    analysis = Analyzer(None).analyze(message)
    assert [e.type for e in analysis.entities] == ["card_number"]
    assert "5500000000000004" not in analysis.redacted_text
    assert all("5500000000000004" not in e.text for e in analysis.entities)
    reply, _sources = extractive_reply(message, [P], analysis, CompanySettings(), customer_name="Ana")
    assert "5500000000000004" not in reply and "about order" not in reply

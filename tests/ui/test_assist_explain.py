"""The assist panel explains: why out of scope, the nearest training example, the KB sentence that matched."""

from __future__ import annotations

from csassist.core.types import Analysis, IntentPrediction, IntentScore, Neighbour, Passage, Urgency
from csassist.ui.widgets.assist_panel import AssistPanel
from tests.ui.conftest import SIZE


def _analysis(oos: bool) -> Analysis:
    prediction = IntentPrediction(
        top=(IntentScore("track_order", 0.7), IntentScore("refund", 0.2)),
        out_of_scope=oos,
        threshold=0.8,
        oos_score=0.9 if oos else 0.1,
        reason="out of scope (p=0.90): nearest example 0.62 away (track_order); no KB answer above 0.4" if oos
        else "in scope (p=0.10): nearest example 0.15 away (track_order)",
        neighbours=(Neighbour("where is my [b]parcel[/b]", "track_order", 0.85),),
    )
    return Analysis(intent=prediction, entities=(), urgency=Urgency(), redacted_text="x")


async def test_panel_shows_why_and_matched_sentence(app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(AssistPanel)
        passage = Passage("a#0", "a", "Parcel late", "Long body. The carrier needs 5 days.", "a.md", 0.6,
                          evidence="The carrier needs 5 days.")
        panel.show(_analysis(False), [passage], None)
        await pilot.pause()
        intents = str(panel.query_one("#intents").render())
        assert "like \u201cwhere is my [b]parcel[/b]\u201d 0.85" in intents  # literal, never markup
        assert str(panel.query_one("#kb-body-1").render()).startswith("matched: The carrier needs 5 days.")
        panel.show(_analysis(True), [], None)
        await pilot.pause()
        intents = str(panel.query_one("#intents").render())
        assert "out of scope" in intents and "nearest example 0.62 away" in intents


def test_why_line_says_how_a_misspelled_message_was_read() -> None:
    """Typo repair changed what the models read: the agent sees it instead of the nearest example."""
    from csassist.ui.widgets.assist_panel import _why

    pred = IntentPrediction(
        top=(IntentScore("cancel_order", 0.9),), out_of_scope=False, threshold=0.5,
        neighbours=(Neighbour("cancel my order please", "cancel_order", 0.8),), read_as="cancel my order",
    )
    analysis = Analysis(intent=pred, entities=(), urgency=Urgency(), redacted_text="cancle my ordr")
    assert _why(analysis) == "read as \u201ccancel my order\u201d"
    plain = Analysis(intent=IntentPrediction(top=pred.top, out_of_scope=False, threshold=0.5,
                                             neighbours=pred.neighbours), entities=(), urgency=Urgency(),
                     redacted_text="cancel my order")
    assert _why(plain).startswith("like \u201ccancel my order please\u201d")

"""Each feedback event keeps the customer text of the turn it was shown for, through to fine-tuning data.

Issue 10: a new customer message logged the earlier suggestions' events with the *new* message's text,
so an intent correction made on the first message was paired with the second one.  Here the whole path
runs: the app (Pilot, fake engine) -> the real feedback log -> ``finetune --from-log``'s dataset building
and the intent corrections the refit trains on.
"""

from __future__ import annotations

from csassist.core.learn.feedback import FeedbackLog
from csassist.core.learn.intent_promotion import corrections_from_events
from csassist.core.learn.log_pairs import build_dataset
from csassist.ui.widgets.composer import Composer
from tests.ui.conftest import SIZE, customer, settle

FIRST = "where is my parcel 12345"
SECOND = "forget it, I want a refund for the broken mug"


async def test_events_keep_their_turns_text_through_the_log_and_the_finetune_data(
        app_factory, feedback: FeedbackLog) -> None:  # type: ignore[no-untyped-def]
    """Correct turn 1's intent, let turn 2 arrive, edit + send on turn 2: every row pairs with its own text."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", FIRST))
        await settle(pilot, app)
        await pilot.press("i", "c", "a", "n", "c", "enter")  # the agent: this is really cancel_order
        await settle(pilot, app)
        assert app.inbox.conversations["c1"].intent_label == "cancel_order"
        app.ingest(customer("c1", SECOND))  # supersedes turn 1's three suggestions
        await settle(pilot, app)
        await pilot.press("2", "e", "end", "space", "T", "y", "escape", "ctrl+s")
        await settle(pilot, app)
        sent = app.outbox.sent[0][1]
        assert sent.endswith(" Ty") and app.query_one(Composer).text == ""

    rows = [(e["turn"], e["slot"], e["outcome"], e["customer_text"], e["intent"], e["intent_correction"])
            for e in feedback.events()]
    assert rows == [
        (1, 0, "ignored", FIRST, "missing_parcel", "cancel_order"),
        (1, 1, "ignored", FIRST, "missing_parcel", "cancel_order"),
        (1, 2, "ignored", FIRST, "missing_parcel", "cancel_order"),
        (2, 0, "ignored", SECOND, "refund_request", None),
        (2, 1, "edited", SECOND, "refund_request", None),
        (2, 2, "ignored", SECOND, "refund_request", None),
    ]

    dataset = build_dataset(feedback, min_pairs=1, enforce_min=False)
    assert dataset.summary["pairs"] == 1 and dataset.summary["pairs_by_intent"] == {"refund_request": 1}
    (pair,) = dataset.train + dataset.val
    assert pair.target == sent and pair.outcome == "edited" and pair.prompt == "prompt-1"

    corrections = corrections_from_events(feedback.events())  # what the intent refit trains on
    assert [(e.text, e.intent) for e in corrections] == [(FIRST, "cancel_order")]  # not the message after it

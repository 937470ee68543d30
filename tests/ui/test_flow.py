"""Pilot tests of the agent's whole keyboard flow on the fake assistant (fast, deterministic)."""

from __future__ import annotations

from pathlib import Path

from csassist.core.io.outbox import Outbox, read_outbox
from csassist.core.learn.feedback import FeedbackLog
from csassist.settings import Settings, UISettings
from csassist.ui.screens.intent import IntentScreen
from csassist.ui.screens.reject import RejectScreen
from csassist.ui.widgets.assist_panel import AssistPanel
from csassist.ui.widgets.composer import Composer
from csassist.ui.widgets.conversation_list import ConversationList
from csassist.ui.widgets.suggestions import SuggestionList
from csassist.ui.widgets.transcript import Transcript
from tests.ui.conftest import SIZE, customer, settle
from tests.ui.fakes import FakeAssistant


def _panel_text(app) -> str:  # type: ignore[no-untyped-def]
    """Intent + entities text of the assist panel."""
    panel = app.query_one(AssistPanel)
    return "\n".join(str(w.render()) for w in panel.query("Static"))


async def test_arrive_accept_edit_send(app_factory, feedback: FeedbackLog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Message -> intent + KB shown -> '1' accepts -> edit -> ctrl+s -> outbox file and feedback hold it."""
    outbox = Outbox(tmp_path / "outbox.jsonl")
    app = app_factory(outbox=outbox)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "My parcel 12345 never came"))
        await settle(pilot, app)
        panel = _panel_text(app)
        assert "missing_parcel" in panel and "82%" in panel and "12345" in panel
        titles = [c.title for c in app.query("Collapsible")]
        assert str(titles[0]).startswith("1. My parcel has not arrived")
        assert app.query_one(SuggestionList).card_text(0).startswith("Hello, thanks")
        assert app.query_one(SuggestionList).card_text(2).startswith("Hi! Draft 2")

        await pilot.press("1")
        composer = app.query_one(Composer)
        accepted = composer.text
        assert accepted.startswith("Hello, thanks") and app.focused is not composer
        assert "1" in {b.binding.key for b in app.screen.active_bindings.values() if b.enabled}
        await pilot.press("e")
        assert app.focused is composer
        footer_keys = {b.binding.key for b in app.screen.active_bindings.values() if b.enabled}
        assert "ctrl+s" in footer_keys and "1" not in footer_keys  # typing keys are not shortcuts now
        await pilot.press("space", "B", "y", "e", "!")  # typed into the composer, not shortcuts
        assert composer.text == accepted + " Bye!"
        await pilot.press("escape")  # back to the single-key shortcuts
        assert app.focused is app.query_one("#conversations")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert composer.text == ""
        assert "You" in app.query_one(Transcript).plain_text()
    records = read_outbox(tmp_path / "outbox.jsonl")
    assert [(r["conversation_id"], r["text"], r["outcome"], r["intent"]) for r in records] == [
        ("c1", accepted + " Bye!", "edited", "missing_parcel")]
    events = list(feedback.events())
    assert [(e["slot"], e["outcome"]) for e in events] == [(0, "edited"), (1, "ignored"), (2, "ignored")]
    assert events[0]["final_text"] == accepted + " Bye!"
    assert events[0]["source_ids"] == ["missing-parcel"]
    assert events[0]["edit_distance"] == 2


async def test_accept_as_is_records_accepted(app_factory, feedback: FeedbackLog) -> None:  # type: ignore[no-untyped-def]
    """Pressing 2 then ctrl+s sends the draft unchanged: outcome 'accepted' for slot 1."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "I want a refund, it arrived broken"))
        await settle(pilot, app)
        await pilot.press("2", "ctrl+s")
        await settle(pilot, app)
        assert app.outbox.sent[0][1].startswith("Hi! Draft 1")
    outcomes = {e["slot"]: e["outcome"] for e in feedback.events()}
    assert outcomes == {0: "ignored", 1: "accepted", 2: "ignored"}


async def test_reject_with_reason_then_regenerate(app_factory, feedback: FeedbackLog) -> None:  # type: ignore[no-untyped-def]
    """x opens the reason modal; a digit picks the reason; r drafts new suggestions with a new seed."""
    settings = Settings(ui=UISettings(reject_reasons=("wrong facts", "wrong tone")))
    assistant = FakeAssistant()
    app = app_factory(settings, assistant=assistant)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "reset my password please"))
        await settle(pilot, app)
        await pilot.press("3")
        await pilot.press("x")
        assert isinstance(app.screen, RejectScreen)
        await pilot.press("2")
        await settle(pilot, app)
        assert not isinstance(app.screen, RejectScreen)
        assert app.query_one(Composer).text == ""  # the rejected draft left the composer
        assert "rejected: wrong tone" in app.query_one(SuggestionList).card_text(2)
        await pilot.press("r")
        await settle(pilot, app)
        assert assistant.suggest_calls == 2
        assert "(seed " in app.query_one(SuggestionList).card_text(1)
        assert "(seed 0)" not in app.query_one(SuggestionList).card_text(1)
    events = [(e["slot"], e["outcome"], e["reject_reason"]) for e in feedback.events()]
    assert events == [(2, "rejected", "wrong tone"), (0, "rejected", "regenerated"), (1, "rejected", "regenerated"),
                      (0, "ignored", None), (1, "ignored", None), (2, "ignored", None)]  # the new drafts, at quit


async def test_escape_cancels_reject(app_factory, feedback: FeedbackLog) -> None:  # type: ignore[no-untyped-def]
    """Escape in the reason modal rejects nothing."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await settle(pilot, app)
        await pilot.press("x", "escape")
        await settle(pilot, app)
        assert feedback.count() == 0
    assert [e["outcome"] for e in feedback.events()] == ["ignored"] * 3  # shown, never decided: quit says so


async def test_switching_conversations_keeps_drafts_and_unread(app_factory) -> None:  # type: ignore[no-untyped-def]
    """n/p move through the inbox; unread counts clear on visit; an unsent draft survives a switch."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel", name="Ana"))
        app.ingest(customer("c2", "refund please", name="Bo"))
        app.ingest(customer("c2", "hello??", name="Bo"))
        await settle(pilot, app)
        assert app.selected == "c1"
        assert app.inbox.conversations["c2"].unread == 2
        await pilot.press("1")
        draft = app.query_one(Composer).text
        await pilot.press("n")
        await settle(pilot, app)
        assert app.selected == "c2" and app.inbox.conversations["c2"].unread == 0
        assert "hello??" in app.query_one(Transcript).plain_text()
        assert "refund_request" in _panel_text(app)
        assert app.query_one(Composer).text == ""
        await pilot.press("p")
        await settle(pilot, app)
        assert app.selected == "c1" and app.query_one(Composer).text == draft


async def test_new_message_cancels_stale_drafts_and_marks_them_ignored(feedback: FeedbackLog, app_factory) -> None:  # type: ignore[no-untyped-def]
    """A second customer message while drafts stream cancels them; shown ones become 'ignored'."""
    assistant = FakeAssistant(delay=0.2)  # ~4 s per streamed draft: still streaming when interrupted
    app = app_factory(assistant=assistant)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        for _ in range(500):  # until the extractive slot is shown
            await pilot.pause(0.01)
            if app.query_one(SuggestionList).card_text(0):
                break
        assert app.inbox.conversations["c1"].machine.drafting
        app.ingest(customer("c1", "actually I want a refund"))
        while app.inbox.conversations["c1"].turn < 2:  # handled: the stale run's token is cancelled
            await pilot.pause(0.01)
        assistant.delay = 0.0  # only now, or the stale run could race to its end before the cancel
        await settle(pilot, app)
        assert assistant.cancelled_runs >= 1
        assert app.query_one(SuggestionList).card_text(0).startswith("Hello, thanks for reaching out. If an item")
        assert "refund_request" in _panel_text(app)
    ignored = [(e["turn"], e["slot"], e["outcome"], e["customer_text"]) for e in feedback.events()]
    assert ignored[0] == (1, 0, "ignored", "where is my parcel")  # a draft finished under heavy load may follow
    first = [event for event in ignored if event[0] == 1]
    assert all(event[2:] == ("ignored", "where is my parcel") for event in first)  # its own turn's text
    assert ignored[len(first):] == [(2, slot, "ignored", "actually I want a refund") for slot in range(3)]  # quit


async def test_intent_correction(app_factory) -> None:  # type: ignore[no-untyped-def]
    """i opens the modal; typing filters; Enter picks; the list and panel show the correction."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await settle(pilot, app)
        await pilot.press("i")
        assert isinstance(app.screen, IntentScreen)
        await pilot.press("c", "a", "n", "c", "enter")
        await settle(pilot, app)
        assert app.inbox.conversations["c1"].intent_label == "cancel_order"
        assert "corrected → cancel_order" in _panel_text(app)


async def test_kb_search_puts_answer_in_composer(app_factory) -> None:  # type: ignore[no-untyped-def]
    """/ opens KB search prefilled with the message; Enter uses the best hit."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "forgot my password"))
        await settle(pilot, app)
        await pilot.press("slash")
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.query_one(Composer).text.startswith("Use 'Forgot password'")


async def test_send_with_empty_composer_warns(app_factory) -> None:  # type: ignore[no-untyped-def]
    """ctrl+s with nothing written sends nothing and says why."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "hi"))
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.outbox.sent == []
        assert any("Nothing to send" in n.message for n in app._notifications)


class BrokenOutbox:
    """An outbox whose disk is full."""

    def send(self, conversation_id: str, text: str, meta: dict[str, object] | None = None) -> None:
        """Always fails, as Outbox.send does when it cannot write."""
        raise OSError("No space left on device")


async def test_failed_send_puts_reply_back(app_factory, feedback: FeedbackLog) -> None:  # type: ignore[no-untyped-def]
    """When the outbox cannot write, the reply returns to the composer and leaves the transcript."""
    app = app_factory(outbox=BrokenOutbox())
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await settle(pilot, app)
        await pilot.press("1")
        text = app.query_one(Composer).text
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.query_one(Composer).text == text
        assert "You" not in app.query_one(Transcript).plain_text()
        assert any("Not sent" in n.message for n in app._notifications)
        assert feedback.count() == 0  # nothing decided: the suggestions are back, undecided
        assert app.inbox.conversations["c1"].machine.picked == 0
    assert [(e["slot"], e["outcome"]) for e in feedback.events()] == [(0, "ignored"), (1, "ignored"), (2, "ignored")]


async def test_mouse_selects_conversation_and_accepts_suggestion(app_factory) -> None:  # type: ignore[no-untyped-def]
    """A click on an inbox row opens that conversation; a click on a suggestion accepts it."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel", name="Ana"))
        app.ingest(customer("c2", "I want a refund", name="Bo"))
        await settle(pilot, app)
        assert app.selected == "c1"
        await pilot.click(ConversationList, offset=(4, 3))  # border, header, first row, second row
        await settle(pilot, app)
        assert app.selected == "c2"
        await pilot.click("#suggestion-2", offset=(5, 2))
        await settle(pilot, app)
        assert app.query_one(Composer).text.startswith("Hi! Draft 1")
        assert app.inbox.conversations["c2"].machine.picked == 1


async def test_ui_answers_keys_while_a_slow_model_streams(app_factory) -> None:  # type: ignore[no-untyped-def]
    """Never frozen: with a model producing a word every 0.3 s, keys still act at once."""
    import time

    assistant = FakeAssistant(delay=0.3)
    app = app_factory(assistant=assistant)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel", name="Ana"))
        app.ingest(customer("c2", "I want a refund", name="Bo"))
        for _ in range(300):
            await pilot.pause(0.01)
            if app.query_one(SuggestionList).card_text(0):
                break
        assert app.inbox.conversations["c1"].machine.drafting
        started = time.perf_counter()
        await pilot.press("n")
        assert app.selected == "c2"
        await pilot.press("p")
        assert app.selected == "c1"
        assert time.perf_counter() - started < 1.0  # far less than one model word per key
        assistant.delay = 0.0

"""No message can switch the assistant off: worker failures are shown and the next message is handled.

Issue 10: a lone surrogate made the tokenizer raise inside the analysis worker, a "running" flag was
never reset, and nothing was analysed again; a bad ``ts`` crashed the app with exit code 0.  These tests
do not rely on surrogates (intake normalises them away now): the fake engine raises by itself.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from textual.app import App

from csassist.core.types import Analysis, CancelToken, Message, Passage, SuggestionUpdate
from csassist.core.workspace import Workspace
from csassist.ui.app import CsassistApp, app_exit_code, run_app
from csassist.ui.backlog import Backlog
from csassist.ui.render import clock_time
from csassist.ui.widgets.conversation_list import ConversationList
from csassist.ui.widgets.suggestions import SuggestionList
from csassist.ui.widgets.transcript import Transcript
from tests.hostile_corpus import SURROGATES, TIMESTAMPS_BAD
from tests.ui.conftest import SIZE, customer, settle
from tests.ui.fakes import FakeAssistant


class StrictTokenizer(FakeAssistant):
    """Raises like a real tokenizer on text UTF-8 cannot encode, and on a message saying 'explode'."""

    def analyze(self, text: str, history: Sequence[Message] = ()) -> Analysis:
        """UnicodeEncodeError for lone surrogates (what the HF tokenizers do), RuntimeError on 'explode'."""
        text.encode("utf-8")
        if "explode" in text:
            raise RuntimeError("engine bug")
        return super().analyze(text, history)


class FailingDrafts(FakeAssistant):
    """The reply backend dies on messages that mention 'crash'."""

    def suggest(self, message: Message, history: Sequence[Message], analysis: Analysis | None,
                passages: Sequence[Passage], cancel: CancelToken, *, n: int | None = None,
                seed: int = 0) -> Iterator[SuggestionUpdate]:
        """Raise half-way through (after slot 0) when asked to."""
        for update in super().suggest(message, history, analysis, passages, cancel, n=n, seed=seed):
            yield update
            if "crash" in message.text:
                raise OSError("backend gone")


def _notes(app: CsassistApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_one_message_the_engine_cannot_take_fails_alone(app_factory) -> None:  # type: ignore[no-untyped-def]
    """The engine raises on one message: that is shown (toast + inbox row); other customers and the same
    customer's next message are analysed; the analysis queue is left startable."""
    app = app_factory(assistant=StrictTokenizer())
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("bad", "explode", name="Sam"))
        app.ingest(customer("good", "where is my parcel", name="Ana"))
        await settle(pilot, app)
        assert app.inbox.conversations["good"].analysis is not None
        assert app.inbox.conversations["bad"].analysis is None
        assert any("Could not analyse the message from Sam: RuntimeError: engine bug" in n for n in _notes(app))
        assert any("analysis failed" in row for row in app.query_one(ConversationList).row_texts())
        assert not app.analysis_backlog.draining and len(app.analysis_backlog) == 0
        app.ingest(customer("bad", "sorry, my parcel 12345 is late", name="Sam"))  # the same customer again
        for i in range(3):
            app.ingest(customer(f"c{i}", "explode" if i == 1 else "refund please"))
        await settle(pilot, app)
        bad = app.inbox.conversations["bad"]
        assert bad.analysis is not None and bad.analysed_turn == 2 and bad.intent_label == "missing_parcel"
        analysed = {cid: app.inbox.conversations[cid].analysis is not None for cid in ("c0", "c1", "c2")}
        assert analysed == {"c0": True, "c1": False, "c2": True}


async def test_lone_surrogates_are_analysed_and_shown(app_factory) -> None:  # type: ignore[no-untyped-def]
    """The issue's 'x \\ud800 y' and the other surrogate cases reach a tokenizer that would raise on them
    only as valid text (intake normalises them), and the screen shows them: every conversation is analysed."""
    app = app_factory(assistant=StrictTokenizer())
    async with app.run_test(size=SIZE) as pilot:
        for name, text in SURROGATES:
            app.ingest(customer(name, text))
        app.ingest(customer("after", "where is my parcel"))
        await settle(pilot, app)
        assert all(c.analysis is not None for c in app.inbox.conversations.values())
        assert not any("Could not analyse" in n for n in _notes(app))
        assert "x \ufffd y" in app.query_one(Transcript).plain_text()


async def test_a_failing_reply_backend_is_shown_and_the_next_turn_drafts(app_factory) -> None:  # type: ignore[no-untyped-def]
    """The run dies after slot 0: a notification; slot 0 stays usable; the next message drafts again."""
    assistant = FailingDrafts()
    app = app_factory(assistant=assistant)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "crash the parcel thing"))
        await settle(pilot, app)
        assert any("Suggestions failed: OSError: backend gone" in n for n in _notes(app))
        machine = app.inbox.conversations["c1"].machine
        assert not machine.drafting and app.query_one(SuggestionList).card_text(0).startswith("Hello")
        app.ingest(customer("c1", "where is my parcel"))
        await settle(pilot, app)
        assert assistant.suggest_calls == 2
        assert app.query_one(SuggestionList).card_text(2).startswith("Hi! Draft 2")


def test_backlog_restarts_after_a_worker_died() -> None:
    """A worker that dies between take() and the end releases the backlog in `finally`: the next put starts one."""
    backlog: Backlog[str, int] = Backlog()
    assert backlog.put("a", 1) is True  # start a worker
    assert backlog.put("b", 2) is False  # one is draining
    assert backlog.put("a", 3) is False  # replaces a's value, keeps its place
    assert backlog.take() == ("a", 3)
    backlog.release()  # the worker raised: its finally ran
    assert backlog.put("c", 4) is True  # so a new one starts, and drains what was left
    assert [backlog.take(), backlog.take(), backlog.take()] == [("b", 2), ("c", 4), None]
    assert not backlog.draining and backlog.put("d", 5) is True


@pytest.mark.parametrize("ts", [1e300, 1.8e18, -1e300, float("nan"), float("inf"), float("-inf")])
def test_clock_time_never_raises(ts: float) -> None:
    """Absurd timestamps render as a blank, not an OverflowError."""
    assert clock_time(ts) == ""


async def test_absurd_timestamps_do_not_crash_the_screen(app_factory) -> None:  # type: ignore[no-untyped-def]
    """Messages with every refused ts value are shown (the wait column stays sane) and the app keeps going."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        for i, ts in enumerate(v for v in TIMESTAMPS_BAD if isinstance(v, (int, float)) and not isinstance(v, bool)):
            app.ingest(Message(f"t{i}", "customer", f"where is my parcel {i}", ts=float(ts), customer=f"T{i}"))
        app.ingest(customer("ok", "refund please"))
        await settle(pilot, app)
        for _ in range(len(app.inbox)):
            await pilot.press("n")
            await settle(pilot, app, rounds=1)
        assert app.inbox.conversations["ok"].analysis is not None
        assert app.is_running


def test_exit_code_follows_textuals_return_code() -> None:
    """1 after an unhandled exception, 0 after a normal quit or before any run."""
    app: App[None] = App()
    assert app_exit_code(app) == 0
    app._return_code = 1  # what App._handle_exception sets
    assert app_exit_code(app) == 1


def test_run_app_exits_non_zero_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    """A rendering crash (the old clock_time OverflowError, simulated) ends run_app with 1, not 0."""
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"conversation_id": "x", "customer": "X", "text": "where is my parcel"}\n', encoding="utf-8")

    def crash(ts: float) -> str:
        raise OverflowError("timestamp out of range for platform time_t")

    monkeypatch.setattr("csassist.ui.widgets.transcript.clock_time", crash)
    monkeypatch.setattr("csassist.ui.app.default_factory", lambda settings: FakeAssistant())
    monkeypatch.setattr(Workspace, "index_missing", lambda self, index_dir=None: False)  # no first-run indexing
    monkeypatch.setattr(CsassistApp, "run", lambda self: App.run(self, headless=True, size=SIZE))
    args = argparse.Namespace(source=str(feed), follow=False, listen=None, no_demo=True, speed=1.0, backend=None,
                              theme=None)
    code = asyncio.run(asyncio.to_thread(run_app, args))  # App.run starts its own event loop: not on ours
    assert code == 1
    assert "OverflowError" in capfd.readouterr().err  # Textual printed the traceback: the crash is not hidden

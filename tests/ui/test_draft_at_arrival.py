"""Drafting starts at message arrival for the open conversation (issue 13.3), on the fake engine.

The open conversation's message is analysed before a backlog of other conversations, and its drafts
start as soon as that analysis is in; a conversation the agent opens while its message is still
queued is analysed next.  The turn rules are unchanged: a newer message cancels the stale drafts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from csassist.core.types import Analysis, CancelToken, Message, Passage, SuggestionUpdate
from csassist.ui.backlog import Backlog
from tests.ui.conftest import SIZE, customer, settle
from tests.ui.fakes import FakeAssistant


class GatedAssistant(FakeAssistant):
    """The first analysis waits for ``gate``; every analyse/suggest call is logged in order."""

    def __init__(self, analyse_s: float = 0.05) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.analyse_s = analyse_s
        self.log: list[tuple[str, str]] = []
        self._first = True

    def analyze(self, text: str, history: Sequence[Message] = ()) -> Analysis:
        if self._first:
            self._first = False
            assert self.gate.wait(10), "the test never opened the gate"
        else:
            time.sleep(self.analyse_s)
        self.log.append(("analyze", text))
        return super().analyze(text, history)

    def suggest(self, message: Message, history: Sequence[Message], analysis: Analysis | None,
                passages: Sequence[Passage], cancel: CancelToken, *, n: int | None = None,
                seed: int = 0) -> Iterator[SuggestionUpdate]:
        self.log.append(("suggest", message.text))
        yield from super().suggest(message, history, analysis, passages, cancel, n=n, seed=seed)


async def _wait_for(pilot, condition) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition not reached")


async def test_open_conversation_is_analysed_and_drafted_before_the_backlog(app_factory) -> None:  # type: ignore[no-untyped-def]
    assistant = GatedAssistant()
    app = app_factory(assistant=assistant)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await _wait_for(pilot, lambda: app.selected == "c1")
        for i in range(2, 7):  # a burst in other conversations, queued behind c1's analysis
            app.ingest(customer(f"c{i}", f"refund please {i}", name=f"N{i}"))
        app.ingest(customer("c1", "actually my password does not work"))
        await _wait_for(pilot, lambda: app.inbox.conversations["c1"].turn == 2 and len(app.inbox) == 6)
        assistant.gate.set()
        await settle(pilot, app)
        order = assistant.log
        new = order.index(("analyze", "actually my password does not work"))
        assert new == 0 or order[:new] == [("analyze", "where is my parcel")]  # it jumped the five others
        drafted = order.index(("suggest", "actually my password does not work"))
        assert drafted < order.index(("analyze", "refund please 6"))  # drafting did not wait for the backlog
        assert ("suggest", "where is my parcel") not in order  # the stale turn was never drafted
        assert not any(kind == "suggest" and "refund" in text for kind, text in order)  # only the open one drafts
        machine = app.inbox.conversations["c1"].machine
        assert machine.slots[2].done and machine.slots[2].text.startswith("Hi! Draft 2")


async def test_opening_a_queued_conversation_analyses_and_drafts_it_next(app_factory) -> None:  # type: ignore[no-untyped-def]
    assistant = GatedAssistant()
    app = app_factory(assistant=assistant)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await _wait_for(pilot, lambda: app.selected == "c1")
        for i in range(2, 7):
            app.ingest(customer(f"c{i}", f"refund please {i}", name=f"N{i}"))
        await _wait_for(pilot, lambda: len(app.inbox) == 6)
        app.select("c5")  # the agent opens a conversation whose message is still queued
        assistant.gate.set()
        await settle(pilot, app)
        order = assistant.log
        assert order[:2] == [("analyze", "where is my parcel"), ("analyze", "refund please 5")]
        assert order.index(("suggest", "refund please 5")) < order.index(("analyze", "refund please 6"))
        assert app.inbox.conversations["c5"].machine.slots[0].text.startswith("Hello, thanks for reaching out.")


def test_backlog_put_first_and_promote() -> None:
    backlog: Backlog[str, int] = Backlog()
    backlog.put("a", 1)
    backlog.put("b", 2)
    backlog.put("c", 3, first=True)
    assert backlog.promote("b") is True and backlog.promote("zz") is False
    assert [backlog.take(), backlog.take(), backlog.take(), backlog.take()] == [("b", 2), ("c", 3), ("a", 1), None]

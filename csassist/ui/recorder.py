"""Writing down what the agent did: replies to the outbox, feedback events to the log, off the UI thread.

The outcomes themselves are decided by :mod:`csassist.ui.turn` (the state machine returns the events);
this mixin only writes them, in the order they happened: one thread worker drains a
:class:`~csassist.ui.backlog.Backlog`, the outbox first (the customer's reply matters most), then the
feedback log.  When the outbox refuses a reply the app gets :class:`~csassist.ui.messages.SendFailed`
with the whole :class:`~csassist.ui.turn.Reply`, so the reply returns to the composer and its suggestions'
outcomes are not lost.  When the app closes, :meth:`Recorder.flush` writes what is left on the calling
thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from textual import work

from csassist.core.learn.feedback import FeedbackEvent
from csassist.ui.backlog import Backlog
from csassist.ui.messages import EngineNotice, SendFailed
from csassist.ui.turn import Reply

_Item = tuple[Reply | None, tuple[FeedbackEvent, ...]]


class Recorder:
    """Mixin for the App: ``record(events)`` and ``deliver(reply)``; both return at once."""

    outbox: Any
    feedback: Any
    post_message: Callable[..., bool]  # from textual.app.App (thread-safe)

    def _recorder_state(self) -> tuple[Backlog[int, _Item], itertools.count[int], threading.Lock]:
        """The backlog, its key counter and the write lock (created on first use: the App owns __init__)."""
        state = self.__dict__.get("_recorder")
        if state is None:
            state = self.__dict__["_recorder"] = (Backlog(), itertools.count(), threading.Lock())
        return state  # type: ignore[no-any-return]

    def record(self, events: Sequence[FeedbackEvent]) -> None:
        """Append feedback events to the log (in a worker, after everything queued before them)."""
        if events:
            self._enqueue((None, tuple(events)))

    def deliver(self, reply: Reply) -> None:
        """Put the agent's reply in the outbox (flushed), then log its feedback events."""
        self._enqueue((reply, reply.events))

    def _enqueue(self, item: _Item) -> None:
        backlog, keys, _lock = self._recorder_state()
        if backlog.put(next(keys), item):
            self._persist_loop()

    @work(thread=True, group="persist", name="persist", exit_on_error=False, description="write replies and feedback")
    def _persist_loop(self) -> None:
        """Worker body: write queued items in order until none is left.

        It does not stop when cancelled (the app is closing): a queued reply is a promise to a customer.
        """
        backlog, _keys, _lock = self._recorder_state()
        try:
            while (item := backlog.take()) is not None:
                self._write(*item[1])
        finally:
            backlog.release()

    def flush(self, events: Sequence[FeedbackEvent] = ()) -> None:
        """Write everything still queued, then ``events``, on the calling thread (the app is closing)."""
        backlog, _keys, _lock = self._recorder_state()
        while (item := backlog.take()) is not None:
            self._write(*item[1])
        if events:
            self._write(None, tuple(events))

    def _write(self, reply: Reply | None, events: tuple[FeedbackEvent, ...]) -> None:
        """Outbox first, then the feedback log; failures become messages, never exceptions."""
        _backlog, _keys, lock = self._recorder_state()
        with lock:
            if reply is not None and self.outbox is not None:
                try:
                    self.outbox.send(reply.message.conversation_id, reply.message.text, meta=reply.meta)
                except Exception as exc:  # noqa: BLE001 - the reply goes back to the composer
                    self.post_message(SendFailed(reply.message.conversation_id, reply, f"{type(exc).__name__}: {exc}"))
                    return  # its events are decided again by Turn.send_failed
            if self.feedback is None:
                return
            for event in events:
                try:
                    self.feedback.record(event)
                except Exception as exc:  # noqa: BLE001 - losing one log line must not stop the agent
                    self.post_message(EngineNotice(f"Feedback not logged: {exc}", severity="warning"))

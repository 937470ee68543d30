"""Posting the replies the agent sent to Chatwoot: from a thread, retried until delivered, never twice.

Why a module of its own: delivery has its own failure rules (backoff, ``Retry-After``, a refused
token ends the attempt but keeps the reply in the outbox, an ambiguous failure is checked against the
conversation before re-posting) and its own durable state (:class:`DeliveryLedger`); intake
(:mod:`csassist.core.io.chatwoot`) only needs :meth:`ChatwootSender.submit`, ``start`` and ``stop``.
The sender talks back to its connector through :class:`SenderHost`, so this module does not import
the connector's (no import cycle).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from csassist.core.io.chatwoot_api import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    ChatwootClient,
    ChatwootConfig,
    ChatwootError,
    ChatwootRetry,
    chatwoot_time,
    parse_key,
)
from csassist.core.io.delivery_ledger import DeliveryLedger
from csassist.core.io.outbox import read_outbox


class SenderHost(Protocol):
    """What the sender needs from its connector (:class:`csassist.core.io.chatwoot.ChatwootConnector`)."""

    config: ChatwootConfig
    client: ChatwootClient

    def problem(self, text: str) -> None:
        """Report to the app (never raises)."""

    def remember_own(self, conversation: int, content: str) -> None:
        """A reply about to be posted: its echo through polling or a webhook is not news."""


class ChatwootSender:
    """Post sent replies to Chatwoot from a thread, retrying until delivered (see module docstring).

    :meth:`submit` takes an outbox record *after* the outbox made it durable; delivered outbox ids
    are recorded in the :class:`DeliveryLedger` at ``ledger`` (fsynced), so :meth:`start` can find
    replies a previous run did not deliver and post them, without ever posting one twice.
    """

    def __init__(self, connector: SenderHost, *, ledger: Path) -> None:
        self.connector = connector
        self.ledger = DeliveryLedger(ledger)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        #: Replies posted, attempts that failed, and the last failure (status bar, tests).
        self.posted = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self, outbox_path: Path | None = None) -> None:
        """Start the thread; re-queue replies of ``outbox_path`` that never reached Chatwoot."""
        if self._thread is not None:
            return
        if outbox_path is not None:
            for record in read_outbox(outbox_path):
                if parse_key(str(record.get("conversation_id", ""))) and str(record.get("id")) not in self.ledger:
                    self.submit({**record, "_resend": True})
        self._thread = threading.Thread(target=self._loop, name="csassist-chatwoot-send", daemon=True)
        self._thread.start()

    def submit(self, record: Mapping[str, Any]) -> None:
        """Queue one outbox record for posting (ids of other feeds are ignored)."""
        key = parse_key(str(record.get("conversation_id", "")))
        if key is None or str(record.get("id")) in self.ledger:
            return
        if key[0] != self.connector.config.account_id:
            self.connector.problem(f"reply for {record.get('conversation_id')} is for another Chatwoot account; kept in the outbox")
            return
        self.connector.remember_own(key[1], str(record.get("text", "")))
        with self._idle:
            self._pending += 1
        self._queue.put(dict(record))

    def _loop(self) -> None:
        while not self._stop.is_set():
            record = self._queue.get()
            if record is None:
                return
            try:
                self._deliver(record)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, record: dict[str, Any]) -> None:
        """Post until it worked, the agent's token is refused, or the app stops (then: next start)."""
        key = parse_key(str(record["conversation_id"]))
        assert key is not None
        conversation, text = key[1], str(record["text"])
        private = bool(record.get("private", self.connector.config.private_notes))
        ambiguous = bool(record.get("_resend"))
        backoff = BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                if ambiguous and self._already_there(conversation, text, private, float(record.get("ts") or 0)):
                    self._mark_delivered(record)
                    return
                self.connector.client.post_message(conversation, text, private=private)
            except ChatwootRetry as exc:
                self._failed(record, str(exc))
                ambiguous = True  # the post may have arrived before the connection broke
                self._stop.wait(exc.retry_after if exc.retry_after is not None else backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            except ChatwootError as exc:  # 401/403/404...: retrying will not help; kept in the outbox
                self._failed(record, str(exc))
                self.connector.problem(f"reply to {record['conversation_id']} not posted to Chatwoot ({exc}); "
                                       "it stays in the outbox and is retried at the next start")
                return
            self._mark_delivered(record)
            return

    def _already_there(self, conversation: int, text: str, private: bool, since: float) -> bool:
        """Whether an outgoing message with this text was posted after ``since`` (idempotent retry)."""
        for raw in self.connector.client.messages(conversation):
            if raw.get("content") == text and raw.get("message_type") in (1, "outgoing") \
                    and bool(raw.get("private")) == private:
                try:
                    if chatwoot_time(raw.get("created_at")) >= since - 5:
                        return True
                except ValueError:
                    return True
        return False

    def _mark_delivered(self, record: dict[str, Any]) -> None:
        """Record the delivery (a ledger write that fails is reported: the reply itself did arrive)."""
        try:
            self.ledger.record(str(record["id"]))
        except OSError as exc:
            self.connector.problem(f"{self.ledger.path}: cannot record a delivered reply ({exc})")
        self.posted += 1

    def _failed(self, record: Mapping[str, Any], why: str) -> None:
        self.failures += 1
        if self.last_error is None or self.failures == 1:
            self.connector.problem(f"posting a reply to {record['conversation_id']} failed ({why}); retrying")
        self.last_error = why

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued reply was posted or given up on; ``True`` when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the reply in flight; the rest is re-sent from the outbox at the next start."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

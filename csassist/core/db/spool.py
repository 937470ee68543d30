"""The local durable queue in front of a remote database, and the thread that empties it.

Why the queue is a file and not a ``queue.Queue``: "nothing acknowledged is lost" has to survive a
SIGKILL of the app and a database outage of any length, and a Python queue survives neither.  So an
event is acknowledged once it is committed to a small local SQLite file (WAL, ``synchronous=FULL``,
about a millisecond); the :class:`Uploader` thread then moves batches to PostgreSQL and deletes them
from the spool only after PostgreSQL committed them.  A crash between the two commits re-sends the
batch on the next start, which the database ignores (``ON CONFLICT DO NOTHING`` on the event id), so
every event is stored exactly once.

The queue is bounded (``max_pending``): when the database has been unreachable for so long that the
bound is reached, :meth:`Spool.push` refuses with a clear error instead of filling the disk - the
caller then tells the agent, and what was acknowledged before stays queued.  Retries back off from
50 ms to 2 s, so a one-second outage costs about a second of delay and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from csassist.core.db.backend import Backend
from csassist.core.db.sqlite_backend import private_sqlite_file, pseudonym_key
from csassist.core.errors import CsassistError

#: Default bound of the spool: about a day of a busy agent's events with the database down.
DEFAULT_MAX_PENDING = 100_000
BATCH_SIZE = 500
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0


class Spool:
    """An append/peek/remove queue of JSON rows in a local SQLite file (thread-safe)."""

    def __init__(self, path: Path, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.path = Path(path)
        self.max_pending = max_pending
        private_sqlite_file(self.path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "kind TEXT NOT NULL, payload TEXT NOT NULL)"
            )
            self._count = int(self._conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])
            #: Key for pseudonymous conversation ids of this workstation (see ``FeedbackLog``).
            self.pseudonym_key = pseudonym_key(self._conn)
        except sqlite3.DatabaseError as exc:
            raise CsassistError(f"{self.path}: the store's local queue is unreadable ({exc})") from exc

    def push(self, kind: str, row: dict[str, Any]) -> int:
        """Commit one row durably; its sequence number.  ``CsassistError`` when the queue is full."""
        return self.push_many([(kind, row)])[0]

    def push_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """Commit ``(kind, row)`` items in one transaction (one fsync); their sequence numbers.

        All or nothing: when the bound would be passed, none is written and ``CsassistError`` says why.
        """
        payloads = [(kind, json.dumps(row, ensure_ascii=False, allow_nan=False)) for kind, row in items]
        with self._lock:
            if self._count + len(payloads) > self.max_pending:
                raise CsassistError(
                    f"the team store has been unreachable too long: {self._count} events are waiting in "
                    f"{self.path}; this one was not recorded"
                )
            seqs: list[int] = []
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for kind, payload in payloads:
                    cursor = self._conn.execute("INSERT INTO pending (kind, payload) VALUES (?, ?)", (kind, payload))
                    seqs.append(int(cursor.lastrowid or 0))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._count += len(seqs)
            return seqs

    def peek(self, n: int) -> list[tuple[int, str, dict[str, Any]]]:
        """The oldest ``n`` rows as ``(seq, kind, row)``; unreadable payloads are dropped with the rest."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, kind, payload FROM pending ORDER BY seq LIMIT ?", (n,)).fetchall()
        out = []
        for seq, kind, payload in rows:
            with contextlib.suppress(ValueError):
                out.append((int(seq), str(kind), json.loads(payload)))
        return out

    def remove(self, seqs: list[int]) -> None:
        """Forget rows the database has committed."""
        if not seqs:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("DELETE FROM pending WHERE seq = ?", [(s,) for s in seqs])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._count = int(self._conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def count(self) -> int:
        """Rows still waiting (as last seen by this process)."""
        with self._lock:
            return self._count

    def close(self) -> None:
        """Close the file; safe to call twice."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()


class Uploader:
    """One daemon thread that moves spooled rows into ``backend`` in batches, retrying with backoff."""

    def __init__(self, spool: Spool, backend: Backend, *, retry_on: tuple[type[BaseException], ...],
                 on_problem: Callable[[str], None] | None = None, batch_size: int = BATCH_SIZE) -> None:
        self.spool, self.backend, self.retry_on = spool, backend, retry_on
        self.batch_size = batch_size
        self._on_problem = on_problem
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        #: Rows moved to the database, failed attempts, and the last failure (for status and tests).
        self.uploaded = 0
        self.failures = 0
        self.last_error: str | None = None
        self._reported_down = False
        self._thread = threading.Thread(target=self._loop, name="csassist-store-upload", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something was pushed: upload soon."""
        self._wake.set()

    def _loop(self) -> None:
        backoff = _BACKOFF_FIRST_S
        while not self._stop.is_set():
            batch = self.spool.peek(self.batch_size)
            if not batch:
                with self._changed:
                    self._changed.notify_all()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                events = [row for _, kind, row in batch if kind == "event"]
                outbox = [row for _, kind, row in batch if kind == "outbox"]
                if events:
                    self.backend.insert_events(events)
                if outbox:
                    self.backend.insert_outbox(outbox)
            except self.retry_on as exc:
                self._failed(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except CsassistError as exc:  # e.g. the shared schema is newer: keep the rows, retry slowly
                self._failed(str(exc))
                self._stop.wait(_BACKOFF_MAX_S)
                continue
            self.spool.remove([seq for seq, _, _ in batch])
            self.uploaded += len(batch)
            backoff = _BACKOFF_FIRST_S
            if self._reported_down:
                self._reported_down = False
                self._problem(f"team store reachable again; {self.spool.count()} events still queued")
            with self._changed:
                self._changed.notify_all()

    def _failed(self, why: str) -> None:
        """Count a failed attempt; tell the agent once per outage, not once per retry."""
        self.failures += 1
        self.last_error = why
        if not self._reported_down:
            self._reported_down = True
            self._problem(f"team store unreachable ({why}); events are queued locally and will be sent")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the spool is empty; ``True`` when it is (``False`` after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wake()
        with self._changed:
            while self.spool.count() > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(0.05 if left is None else min(0.05, left))
                self.wake()
        return True

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread (rows not yet uploaded stay in the spool for the next start)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _problem(self, text: str) -> None:
        if self._on_problem is not None:
            with contextlib.suppress(Exception):
                self._on_problem(text)

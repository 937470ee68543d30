"""One writer thread per log: callers queue rows, the thread commits them in groups.

Why: every commit of the log is an ``fsync`` (about 10 ms on a busy disk).  With one transaction
per caller, eight agents' workers recording at once wait for each other's fsyncs in turn; with one
writer that takes everything queued since its last commit into the next transaction, one fsync
acknowledges the whole group (group commit).  The caller still waits for *its* commit, so "the call
returned" keeps meaning "the row is durable".  The queue is bounded: when the writer cannot keep up
for ``put_timeout_s`` the caller gets a clear error instead of the process growing without limit.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from csassist.core.errors import CsassistError

#: Most rows committed in one transaction.
MAX_GROUP = 256
DEFAULT_QUEUE_SIZE = 4096


class GroupWriter:
    """Serialise writes through one daemon thread; :meth:`submit` blocks until its row is committed.

    ``commit(items)`` receives the queued items in order and returns one result per item (e.g. the
    row ids); an exception fails every item of that group and is re-raised to each caller.
    """

    def __init__(self, commit: Callable[[Sequence[Any]], Sequence[Any]], *, name: str = "csassist-writer",
                 queue_size: int = DEFAULT_QUEUE_SIZE, put_timeout_s: float = 30.0) -> None:
        self._commit = commit
        self._queue: queue.Queue[tuple[Any, Future[Any]] | None] = queue.Queue(maxsize=queue_size)
        self.put_timeout_s = put_timeout_s
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> Any:
        """Queue ``item``, wait for the group that commits it, return its result."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise CsassistError("the log is closed")
        try:
            self._queue.put((item, future), timeout=self.put_timeout_s)
        except queue.Full:
            raise CsassistError(
                f"the log's writer is {self._queue.maxsize} rows behind for {self.put_timeout_s:.0f} s; not recorded"
            ) from None
        return future.result()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            try:
                results = self._commit([item for item, _ in group])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in group:
                    future.set_exception(exc)
            else:
                for (_, future), result in zip(group, results, strict=True):
                    future.set_result(result)
            if stop:
                return

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

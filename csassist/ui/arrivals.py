"""Incoming messages wait here and reach the UI thread in time-boxed batches, not one message each.

Sources (demo, feeds, HTTP) call the app from their own threads.  Posting one Textual message per
customer message put a burst of 3,000 arrivals *in front of* the agent's next keypress: the key
waited until every arrival had been handled (issue 10).  Instead a source appends to this queue and
wakes the app only when it is not already awake; the app then takes arrivals for a few milliseconds
(:data:`SLICE_S`), re-posts its wake-up behind whatever keys and repaints queued meanwhile, and goes
on.  Per-frame work stays bounded, keys interleave with a burst, and nothing is dropped.

Plain Python, no Textual: the app owns one :class:`ArrivalQueue` and does the posting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from csassist.core.types import Message

#: How long one batch may take on the UI thread (half a 60 Hz frame).
SLICE_S = 0.008


class ArrivalQueue:
    """Thread-safe FIFO of ``(message, arrived)`` with a "consumer already woken" flag."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._items: deque[tuple[Message, float]] = deque()
        self._lock = threading.Lock()
        self._awake = False
        self._clock = clock

    def put(self, message: Message) -> bool:
        """Queue ``message`` (stamped with its arrival time); True when the caller must wake the consumer."""
        with self._lock:
            self._items.append((message, self._clock()))
            if self._awake:
                return False
            self._awake = True
            return True

    def take(self, budget_s: float = SLICE_S) -> Iterator[tuple[Message, float]]:
        """Arrivals in order until the queue is empty or ``budget_s`` has passed (at least one is taken)."""
        deadline = self._clock() + budget_s
        while True:
            with self._lock:
                if not self._items:
                    return
                item = self._items.popleft()
            yield item
            if self._clock() >= deadline:
                return

    def stay_awake(self) -> bool:
        """After a batch: True when more is queued (the consumer must wake itself again), else go to sleep."""
        with self._lock:
            self._awake = bool(self._items)
            return self._awake

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

"""A keyed first-in-first-out backlog drained by at most one worker at a time (no Textual here).

The analysis queue and the persist queue both work this way: items arrive on the UI thread, one thread
worker takes them in order and exits when the backlog is empty.  The tricky part is knowing whether a
worker is still draining: a flag that the worker clears *only* on its happy path stays set for ever when
one item raises, and nothing is drained again (issue 10: one message with a lone surrogate switched
analysis off for good).  Here :meth:`Backlog.take` clears the flag under the same lock that
:meth:`Backlog.put` reads it, and the worker calls :meth:`Backlog.release` in a ``finally`` so that even
an escaping exception leaves the backlog startable.

The conversation the agent has open may jump the queue (``put(..., first=True)``, :meth:`Backlog.promote`):
its drafts start only once its message is analysed, and behind a burst of other conversations that
wait was the analysis of all of them (issue 13: drafting starts at message arrival).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Backlog(Generic[K, V]):
    """Items by key in arrival order; putting an existing key replaces its value but keeps its place."""

    def __init__(self) -> None:
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()
        self._draining = False

    def put(self, key: K, value: V, *, first: bool = False) -> bool:
        """Queue ``value`` (at the front with ``first``); True when no worker is draining, i.e. the caller
        must start one now."""
        with self._lock:
            self._items[key] = value
            if first:
                self._to_front(key)
            start = not self._draining
            self._draining = True
            return start

    def promote(self, key: K) -> bool:
        """Move a queued ``key`` to the front; False when it is not queued (taken already, or never put)."""
        with self._lock:
            if key not in self._items:
                return False
            self._to_front(key)
            return True

    def _to_front(self, key: K) -> None:
        """Reorder so ``key`` is taken next (caller holds the lock; O(n), only for the open conversation)."""
        value = self._items.pop(key)
        self._items = {key: value, **self._items}

    def take(self) -> tuple[K, V] | None:
        """The oldest item, or ``None`` when empty (the worker must then return: it is no longer draining)."""
        with self._lock:
            if not self._items:
                self._draining = False
                return None
            key = next(iter(self._items))
            return key, self._items.pop(key)

    def release(self) -> None:
        """The draining worker is ending (normally or not): the next :meth:`put` starts a new one."""
        with self._lock:
            self._draining = False

    @property
    def draining(self) -> bool:
        """Whether a worker is (or is about to be) draining."""
        with self._lock:
            return self._draining

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

"""KV caches of recent prompts, reused by the longest shared prefix of exact token ids.

Why: on CPU the wait for a draft's first token is the prefill of its prompt (~3 ms a token for
SmolLM2-135M on this machine).  The prompt is laid out so that what changes least comes first
(core.reply.prompts: static persona and rules, then passages, then the conversation), so most of it
was already computed for an earlier prompt: the next draft of a turn shares all of it, the next turn
shares the system part, and a *new conversation* shares at least the static prefix.  Keeping a few
prompts' caches (not just the last one) means switching between open conversations does not throw
the other conversation's cache away.

Correctness rests on the key being the exact token ids: a cached cache is only used for the tokens
it was computed from, cut (``crop``) to the shared prefix.  Memory is bounded by ``capacity``
entries (least recently used goes first); an entry whose ids are a prefix of a newer one is dropped
as redundant.  SmolLM2-135M needs ~46 KB of KV cache a token in float32, so four 500-token prompts
hold ~90 MB.

No torch import here: the caches are opaque objects with ``crop(n)`` and ``get_seq_length()``
(transformers' ``DynamicCache``); the generator's lock serialises all use.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

#: Entries kept: a static prefix plus the last prompts of a few conversations.
DEFAULT_CAPACITY = 4
#: Reuse a cached prefix only when at least this many leading tokens are identical (below it the copy
#: costs about what the prefill saves).
MIN_PREFIX_REUSE = 32


def shared_length(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Number of leading token ids ``a`` and ``b`` have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """Up to ``capacity`` (token ids -> KV cache) entries, least recently used evicted first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, min_reuse: int = MIN_PREFIX_REUSE) -> None:
        if capacity < 1:
            raise ValueError(f"prefix cache capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.min_reuse = min_reuse
        self._entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (e.g. after the model's weights changed)."""
        self._entries.clear()

    @property
    def tokens(self) -> int:
        """Token positions held over all entries (what the memory bound is about)."""
        return sum(len(ids) for ids in self._entries)

    def lookup(self, ids: list[int] | tuple[int, ...], *, leave: int = 1) -> tuple[Any, int]:
        """A private copy of the cache sharing the longest prefix with ``ids``, cut to that prefix.

        Returns ``(cache, shared)``, or ``(None, 0)`` when no entry shares :attr:`min_reuse` tokens.
        ``leave`` tokens at the end of ``ids`` are never taken from the cache: the caller must run at
        least one token to get the next-token logits.
        """
        key = tuple(ids)
        best: tuple[int, ...] | None = None
        shared = 0
        for entry in self._entries:
            n = shared_length(entry, key)
            if n > shared:
                best, shared = entry, n
        shared = min(shared, len(key) - leave)
        if best is None or shared < self.min_reuse:
            return None, 0
        stored = self._entries[best]
        if getattr(stored, "crop", None) is None:  # pragma: no cover - a cache type that cannot be cut
            return None, 0
        self._entries.move_to_end(best)
        cache = copy.deepcopy(stored)
        extra = cache.get_seq_length() - shared
        if extra > 0:
            cache.crop(-extra)  # negative = "remove this many" in every transformers version
        if cache.get_seq_length() != shared:  # pragma: no cover - a cache type with other crop semantics
            return None, 0
        return cache, shared

    def store(self, ids: list[int] | tuple[int, ...], cache: Any) -> None:
        """Keep ``cache`` (copied: the caller goes on decoding into its own) for exactly ``ids``."""
        key = tuple(ids)
        for entry in [e for e in self._entries if len(e) <= len(key) and key[: len(e)] == e]:
            del self._entries[entry]  # a prefix of the new entry: every lookup it served, the new one serves
        self._entries[key] = copy.deepcopy(cache)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

"""The prefix cache's bookkeeping without weights: longest-prefix lookup, copies, LRU bound, redundancy."""

from __future__ import annotations

import pytest

from csassist.core.reply.prefix_cache import PrefixCache, shared_length


class FakeKV:
    """Stands in for a transformers DynamicCache: a list of positions that can be cropped."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = list(ids)

    def get_seq_length(self) -> int:
        return len(self.ids)

    def crop(self, n: int) -> None:
        self.ids = self.ids[:n]


def test_lookup_takes_the_longest_shared_prefix_and_returns_a_cropped_copy() -> None:
    cache = PrefixCache(capacity=3, min_reuse=2)
    static = [1, 2, 3]
    conv_a, conv_b = [*static, 10, 11, 12], [*static, 20, 21]
    cache.store(conv_a, FakeKV(conv_a))
    cache.store(conv_b, FakeKV(conv_b))
    kv, shared = cache.lookup([*static, 20, 99, 98])
    assert shared == 4 and kv.ids == [*static, 20]
    kv.ids.append(7)  # the caller decodes into its copy ...
    again, _ = cache.lookup(conv_b)
    assert again.ids == [*static, 20]  # ... the stored entry is untouched; the last token is left to run
    assert cache.lookup([9, 9, 9]) == (None, 0)
    assert cache.lookup([1, 5, 5, 5]) == (None, 0)  # shares 1 < min_reuse


def test_capacity_evicts_the_least_recently_used() -> None:
    cache = PrefixCache(capacity=2, min_reuse=1)
    for first in (1, 2):
        cache.store([first, 0, 0], FakeKV([first, 0, 0]))
    cache.lookup([1, 0, 0, 5])  # touches entry 1
    cache.store([3, 0, 0], FakeKV([3, 0, 0]))
    assert len(cache) == 2
    assert cache.lookup([2, 0, 0, 5]) == (None, 0)  # the least recently used went
    assert cache.lookup([1, 0, 0, 5])[1] == 3 and cache.tokens == 6


def test_a_prefix_of_a_newer_entry_is_dropped_as_redundant() -> None:
    cache = PrefixCache(capacity=4, min_reuse=1)
    cache.store([1, 2], FakeKV([1, 2]))  # e.g. the primed static prefix
    cache.store([1, 2, 3, 4], FakeKV([1, 2, 3, 4]))
    assert len(cache) == 1
    assert cache.lookup([1, 2, 7, 7])[1] == 2  # still served from the longer entry


def test_bad_capacity_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PrefixCache(capacity=0)
    assert shared_length((1, 2, 3), (1, 2, 4, 5)) == 2

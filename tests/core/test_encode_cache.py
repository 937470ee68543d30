"""The memo encoder answers repeated texts without calling the model and never changes the vectors."""

from __future__ import annotations

import numpy as np

from csassist.core.knowledge.encode_cache import MemoEncoder
from tests.fakes import FakeEncoder


def test_repeated_text_is_encoded_once_and_vectors_are_identical() -> None:
    inner = FakeEncoder()
    memo = MemoEncoder(inner)
    first = memo.encode(["where is my parcel"])
    second = memo.encode(["where is my parcel"])
    assert inner.calls == 1
    assert np.array_equal(first, second)
    assert np.array_equal(first, FakeEncoder().encode(["where is my parcel"]))


def test_mixed_batches_keep_order_and_only_encode_new_texts() -> None:
    inner = FakeEncoder()
    memo = MemoEncoder(inner)
    memo.encode(["a b", "c d"])
    out = memo.encode(["c d", "e f", "a b"])
    assert inner.calls == 3  # "e f" was the only new text
    assert np.array_equal(out, FakeEncoder().encode(["c d", "e f", "a b"]))


def test_capacity_bounds_memory_and_large_batches_bypass_the_memo() -> None:
    inner = FakeEncoder()
    memo = MemoEncoder(inner, capacity=2)
    for text in ["one", "two", "three"]:
        memo.encode([text])
    memo.encode(["one"])  # evicted: encoded again
    assert inner.calls == 4
    memo.encode([f"bulk {i}" for i in range(50)])
    assert len(memo._memo) <= 2

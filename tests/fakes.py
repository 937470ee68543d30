"""Tiny, deterministic stand-ins for models, used only in unit tests of logic.

Capability tests that matter also run the real models (marked ``real_model``); these fakes let the
logic around them (indexing, heads, prompt budgets, cancellation) be tested in milliseconds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


class FakeEncoder:
    """Hashed bag-of-words vectors: texts sharing words are similar, as with a real embedder."""

    def __init__(self, dimension: int = 64, model_id: str = "fake-encoder") -> None:
        self.dimension = dimension
        self.model_id = model_id
        self.calls = 0  # how many texts were encoded (tests of incremental indexing count these)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return unit-norm float32 vectors of shape (len(texts), dimension)."""
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dimension] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out

"""A small memo in front of the embedder, so one customer turn is encoded once.

Per turn the engine embeds the same text several times: for the intent head, the out-of-scope
detector, the KB vote's search and the KB search itself.  On a 2-core CPU the encoder is ~90 % of the
analysis time, so sharing one vector is most of the time from a message's arrival to its intent and
KB answers on screen.  The memo is tiny (recent turns only), thread-safe, and transparent: it is
itself an :class:`~csassist.core.knowledge.embedder.Encoder`.

When the wrapped encoder can hand out token states (:mod:`~csassist.core.knowledge.late_chunking`),
a new message's pass also keeps them, for the retriever's late chunking (off by default).  In the app
the wrapped encoder is :class:`~csassist.core.knowledge.message_vectors.SentencePassEncoder`, whose
own memory answers a long message's sentences (``sentence_vectors``) from the passes that made the
message's vector.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from csassist.core.knowledge.embedder import Encoder
from csassist.core.knowledge.late_chunking import TokenStates

#: Misses up to this many texts per call are remembered (larger batches are indexing or evaluation).
MEMO_BATCH = 8
#: Token states kept (each is tokens x dimension floats, ~100 KB for a long message).
STATES_CAPACITY = 8


class MemoEncoder:
    """Wraps an :class:`Encoder`; texts seen recently are answered from memory, the rest encoded together."""

    def __init__(self, inner: Encoder, capacity: int = 256) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.capacity = capacity
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._states: OrderedDict[str, TokenStates] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Same contract as the wrapped encoder (unit-norm float32 rows, one per text)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for row, text in enumerate(texts):
                vector = self._memo.get(text)
                if vector is None:
                    missing.append(row)
                else:
                    self._memo.move_to_end(text)
                    out[row] = vector
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if not missing:
            return out
        if len(missing) > MEMO_BATCH:
            # Large batches (indexing, evaluation) go straight through without filling the memo.
            out[missing] = np.asarray(self.inner.encode([texts[i] for i in missing], batch_size), dtype=np.float32)
            return out
        # A lone new text is a customer message: its token states are kept for late chunking.  Several
        # (a message's sentences or requests) are encoded in one batched call, which measured faster.
        states = self._fresh_states(texts[missing[0]]) if len(missing) == 1 else None
        plain = missing if states is None else []
        if states is not None:
            out[missing[0]] = states.pooled()
        if plain:
            out[plain] = np.asarray(self.inner.encode([texts[i] for i in plain], batch_size), dtype=np.float32)
        with self._lock:
            for row in missing:
                self._memo[texts[row]] = out[row].copy()
                self._memo.move_to_end(texts[row])
            while len(self._memo) > self.capacity:
                self._memo.popitem(last=False)
        return out

    def sentence_vectors(self, text: str, sentences: Sequence[str]) -> list[np.ndarray | None]:
        """The wrapped encoder's vectors of a long message's own ``sentences`` (``None`` where it has none).

        Not memoised here by sentence text: the same sentence in two messages may come from two
        different runs (:class:`~csassist.core.knowledge.message_vectors.SentencePassEncoder`).
        """
        getter = getattr(self.inner, "sentence_vectors", None)
        return list(getter(text, sentences)) if getter is not None else [None] * len(sentences)

    def token_states(self, text: str) -> TokenStates | None:
        """``text``'s token states: remembered from its encoding when recent, else one forward pass.

        ``None`` when the wrapped encoder cannot give token states (callers encode sentences instead).
        """
        with self._lock:
            states = self._states.get(text)
            if states is not None:
                self._states.move_to_end(text)
                return states
        return self._fresh_states(text)

    def _fresh_states(self, text: str) -> TokenStates | None:
        """Ask the wrapped encoder for ``text``'s token states and remember them (None: not offered)."""
        getter = getattr(self.inner, "token_states", None)
        states: TokenStates | None = getter(text) if getter is not None else None
        if states is not None:
            with self._lock:
                self._states[text] = states
                self._states.move_to_end(text)
                while len(self._states) > STATES_CAPACITY:
                    self._states.popitem(last=False)
        return states

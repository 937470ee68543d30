"""Sentence vectors of a long message from its one encoder pass ("late chunking").

Why: a long customer message is searched whole *and* sentence by sentence (its request often sits in
one sentence the story around it dilutes).  Encoding each sentence again cost a second forward pass
per message -- on one CPU thread ~45 ms for four sentences on top of ~35 ms for the whole message,
most of the analyse + retrieve p95 (bench/understanding.py).  The encoder's last token states of the
whole message already hold every sentence: mean-pooling the tokens inside a sentence's character
span (the tokenizer's offset mapping says which) gives that sentence a vector at no model cost.

Such a vector is not the sentence encoded alone: its tokens saw the whole message (MiniLM was not
trained for this; cosine to the separately encoded sentence measured median 0.77, min 0.36 on the dev
set's long messages).  On the dev set (204 in-scope messages) that cost, net, one hit@1 (0 gained,
1 lost), one hit@3 (1 gained, 2 lost) and one top-3 intent (the KB vote reads the same search), so
the retriever keeps it off (:data:`~csassist.core.knowledge.retrieval.LATE_CHUNKING`), and
the app instead encodes a long message's sentences alone and pools the message over them
(:mod:`~csassist.core.knowledge.message_vectors`, faster still with int8 weights and better on the dev set).

The whole-message vector pooled here is the encoder's own vector (mean over every token, special
tokens included, then L2), so the memo encoder keeps a message's token states from the one forward
pass that serves the intent head, the out-of-scope detector, the KB vote and retrieval.

Encoders offer this through ``token_states(text)``; ``None`` means "not available" (a fake, a model
that is not mean-pooled) and callers then encode the sentences separately, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TokenStates:
    """One text's last hidden states and where each token sits in that text.

    ``offsets[i] = (start, end)`` are character positions in :attr:`text` (the text as the encoder
    saw it, after :func:`~csassist.core.textnorm.normalize_text`); special tokens ([CLS], [SEP])
    have ``start == end``.  Tokens past the encoder's length limit are simply absent, and then
    ``complete`` is False.
    """

    text: str
    states: np.ndarray  # (tokens, dimension) float32
    offsets: np.ndarray  # (tokens, 2) int64
    normalize: bool = True
    complete: bool = True  # False when the encoder cut the text at its length limit

    def pooled(self) -> np.ndarray:
        """The text's own vector: the mean of every token (specials included), L2-normalised."""
        vector = np.asarray(self.states, dtype=np.float32).mean(axis=0)
        return _unit(vector[None, :], self.normalize)[0]

    @property
    def covered_until(self) -> int:
        """The last character of :attr:`text` that some token covers (text past it was truncated)."""
        ends = self.offsets[:, 1] if len(self.offsets) else np.zeros(0, dtype=np.int64)
        return int(ends.max()) if ends.size else 0


@runtime_checkable
class TokenEncoder(Protocol):
    """An encoder that can hand out a text's token states (``None`` when it cannot)."""

    def token_states(self, text: str) -> TokenStates | None:
        """The last hidden states and offsets of ``text``, or ``None`` when this encoder has none."""
        ...


def pool_spans(tokens: TokenStates, spans: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per character span of ``tokens.text``: the mean of the tokens starting inside it, L2-normalised.

    Returns ``(vectors, covered)``: ``vectors`` has one row per span; ``covered[i]`` is False when the
    span has no token or, in a truncated text, runs past the last token the encoder kept, and that
    row is zero -- the caller encodes such a sentence on its own.  Special tokens never count.
    """
    dimension = int(tokens.states.shape[1]) if tokens.states.ndim == 2 else 0
    vectors = np.zeros((len(spans), dimension), dtype=np.float32)
    covered = np.zeros(len(spans), dtype=bool)
    if not len(spans) or not len(tokens.offsets):
        return vectors, covered
    starts, ends = tokens.offsets[:, 0], tokens.offsets[:, 1]
    real = ends > starts
    until = len(tokens.text) if tokens.complete else tokens.covered_until
    for row, (start, end) in enumerate(spans):
        if end <= start or end > until:
            continue
        inside = real & (starts >= start) & (starts < end)
        if inside.any():
            vectors[row] = np.asarray(tokens.states[inside], dtype=np.float32).mean(axis=0)
            covered[row] = True
    vectors[covered] = _unit(vectors[covered], tokens.normalize)
    return vectors, covered


def _unit(rows: np.ndarray, normalize: bool) -> np.ndarray:
    """``rows`` scaled to unit length (unchanged when ``normalize`` is False or a row is zero)."""
    if not normalize or not len(rows):
        return rows
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)  # type: ignore[no-any-return]

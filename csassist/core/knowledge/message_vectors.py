"""A long customer message's vector built from its sentences, each encoded on its own.

Why: MiniLM was trained on sentences and short paragraphs.  A long, story-like message ("Hi, I
ordered a lamp on the 3rd ... anyway, I was charged twice") encoded in one pass dilutes its request
in the story, so the retriever already searched each sentence alone as well -- a second forward pass
over the same words, most of the analyse + retrieve p95 on one CPU thread.  Encoding the sentences
alone *instead* of the whole serves both needs with one pass's worth of tokens: each sentence's
vector is exact (its own pass), and the message's vector is the mean of all those passes' token
states, which measured *better* than the whole-message pass for the intent ranking.  Dev set
(bench/understanding.py, 204 in-scope messages): intent top-1 after the verdict 0.907 -> 0.922 with
float32 weights and 0.922 -> 0.931 with int8, hit@1 0.887 -> 0.892 and 0.897 -> 0.907, hit@3 and
top-3 unchanged or better.

:class:`SentencePassEncoder` wraps the configured encoder on the *query* side only (the app's
engine, ``analyze``, ``eval``): KB chunks and training rows keep their whole-text vectors.  A short
message, or one that does not split into located sentences, is encoded whole as before.  The
sentences' token states are remembered briefly, so the retriever's per-sentence search and a
two-request message's parts (when they are whole sentences) cost no further pass.  An encoder that
can pack several texts into one run (``packed_states``, the ONNX encoder) encodes all the sentences
in that one run, each still seeing only itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from csassist.core.knowledge.embedder import Encoder
from csassist.core.knowledge.fusion import LONG_MESSAGE_CHARS
from csassist.core.knowledge.late_chunking import TokenStates
from csassist.core.knowledge.sentences import locate_sentences, split_sentences
from csassist.core.textnorm import normalize_text

#: At most this many sentences are encoded (the whole pass also stopped at the encoder's limit).
MAX_SENTENCES = 12
#: Token states remembered (a sentence's are ~20 tokens x 384 floats, ~30 KB).
STATES_CAPACITY = 64


class SentencePassEncoder:
    """An :class:`~csassist.core.knowledge.embedder.Encoder` whose long texts are pooled over their sentences.

    Also offers ``token_states(text)`` (:class:`~csassist.core.knowledge.late_chunking.TokenStates`):
    for a long text, the sentences' states side by side, each token's offsets moved to where its
    sentence sits in the text.  Wraps any encoder; without token states (a test fake, a model that is
    not mean-pooled) every text is encoded whole.
    """

    def __init__(self, inner: Encoder, capacity: int = STATES_CAPACITY) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.capacity = capacity
        self._states: OrderedDict[str, TokenStates] = OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        """The wrapped encoder's other attributes (``runtime``, ``precision``, ``fallback_reason``)."""
        if name == "inner":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-norm float32 rows: long texts pooled over their sentences, others as the wrapped encoder."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        plain: list[int] = []
        for row, text in enumerate(texts):
            states = self._remembered(text) or self._sentence_states(text)
            if states is None:
                plain.append(row)
            else:
                out[row] = states.pooled()
        if plain:
            out[plain] = np.asarray(self.inner.encode([texts[i] for i in plain], batch_size), dtype=np.float32)
        return out

    def token_states(self, text: str) -> TokenStates | None:
        """``text``'s token states: its sentences' passes when long, else the wrapped encoder's (remembered)."""
        states = self._remembered(text) or self._sentence_states(text)
        if states is None:
            states = self._pass(normalize_text(text))
        return states

    # ------------------------------------------------------------------ internals
    def _sentence_states(self, text: str) -> TokenStates | None:
        """A long text's sentences, each encoded alone (one packed run, or one pass each), their states
        side by side; ``None`` when not long, not split into located sentences, or the wrapped encoder
        has no token states."""
        cleaned = normalize_text(text)
        if len(cleaned.strip()) < LONG_MESSAGE_CHARS or getattr(self.inner, "token_states", None) is None:
            return None
        sentences = split_sentences(cleaned)
        spans = locate_sentences(cleaned, sentences)
        if len(sentences) < 2 or any(span is None for span in spans):
            return None
        states_parts: list[np.ndarray] = []
        offset_parts: list[np.ndarray] = []
        normalize = True
        complete = len(sentences) <= MAX_SENTENCES
        kept = list(zip(sentences, spans, strict=True))[:MAX_SENTENCES]
        passes = self._passes([sentence for sentence, _ in kept])
        for (_sentence, span), part in zip(kept, passes, strict=True):
            assert span is not None
            if part is None:
                return None
            complete = complete and part.complete
            normalize = part.normalize
            start, end = span
            offsets = part.offsets.copy()
            real = offsets[:, 1] > offsets[:, 0]
            # The sentence as split may differ from its span in whitespace only: clip into the span.
            offsets[real] = np.minimum(offsets[real] + start, end)
            offsets[~real] = start  # special tokens: empty, so never counted inside a span
            states_parts.append(np.asarray(part.states, dtype=np.float32))
            offset_parts.append(offsets)
        return TokenStates(cleaned, np.vstack(states_parts), np.vstack(offset_parts),
                           normalize=normalize, complete=complete)

    def _remembered(self, text: str) -> TokenStates | None:
        """The states of a recently encoded short text (a sentence of a recent message), or ``None``."""
        key = normalize_text(text)
        with self._lock:
            states = self._states.get(key)
            if states is not None:
                self._states.move_to_end(key)
            return states

    def _passes(self, texts: Sequence[str]) -> list[TokenStates | None]:
        """Each text's states: remembered, else all the others in one packed run when the wrapped
        encoder offers ``packed_states``, else one pass each."""
        out = [self._remembered(text) for text in texts]
        todo = [i for i, states in enumerate(out) if states is None]
        packer = getattr(self.inner, "packed_states", None)
        if len(todo) > 1 and packer is not None:
            for i, states in zip(todo, packer([texts[i] for i in todo]), strict=True):
                out[i] = self._remember(texts[i], states)
        else:
            for i in todo:
                out[i] = self._pass(texts[i])
        return out

    def _remember(self, text: str, states: TokenStates) -> TokenStates:
        """Keep ``states`` for ``text`` (the most recent :data:`STATES_CAPACITY`); return them."""
        with self._lock:
            self._states[normalize_text(text)] = states
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)
        return states

    def _pass(self, text: str) -> TokenStates | None:
        """One forward pass of the wrapped encoder over ``text`` (remembered); ``None`` without states."""
        remembered = self._remembered(text)
        if remembered is not None:
            return remembered
        getter = getattr(self.inner, "token_states", None)
        states: TokenStates | None = getter(text) if getter is not None else None
        return self._remember(text, states) if states is not None else None

"""A long customer message's vector built from its sentences, each encoded on its own.

Why: MiniLM was trained on sentences and short paragraphs.  A long, story-like message ("Hi, I
ordered a lamp on the 3rd ... anyway, I was charged twice") encoded in one pass dilutes its request
in the story, so the retriever already searched each sentence alone as well -- a second forward pass
over the same words, most of the analyse + retrieve p95 on one CPU thread.  Encoding the sentences
alone *instead* of the whole serves both needs with one pass's worth of tokens: each sentence's
vector comes from its own pass, and the message's vector is the mean of all those passes' token
states, which measured *better* than the whole-message pass for the intent ranking.  Dev set
(bench/understanding.py, 204 in-scope messages): intent top-1 after the verdict 0.907 -> 0.922 with
float32 weights and 0.922 -> 0.931 with int8, hit@1 0.887 -> 0.892 and 0.897 -> 0.907, hit@3 and
top-3 unchanged or better.

:class:`SentencePassEncoder` wraps the configured encoder on the *query* side only (the app's
engine, ``analyze``, ``eval``): KB chunks and training rows keep their whole-text vectors.  A short
message, or one that does not split into located sentences, is encoded whole as before.  A message's
sentence passes are remembered briefly, so the retriever's per-sentence search asks
:meth:`SentencePassEncoder.sentence_vectors` and costs no further pass.  An encoder that can pack
several texts into one run (``packed_states``, the ONNX encoder) encodes all the sentences in that
one run, each still seeing only itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from csassist.core.knowledge.embedder import Encoder
from csassist.core.knowledge.fusion import LONG_MESSAGE_CHARS
from csassist.core.knowledge.late_chunking import TokenStates
from csassist.core.knowledge.sentences import locate_sentences, split_sentences
from csassist.core.textnorm import normalize_text

#: At most this many sentences are encoded (the whole pass also stopped at the encoder's limit).
MAX_SENTENCES = 12
#: Long messages whose sentence passes are remembered (a turn's searches reuse them; a message that
#: was forgotten is encoded again, to the same values).
MESSAGES_CAPACITY = 32
#: Short texts whose token states are remembered (the retriever may ask for a message's states twice).
SHORT_CAPACITY = 16


@dataclass(frozen=True)
class _Passes:
    """A long message's sentence passes: side by side (offsets into the message) and each sentence's own."""

    states: TokenStates
    sentences: dict[str, TokenStates]


class SentencePassEncoder:
    """An :class:`~csassist.core.knowledge.embedder.Encoder` whose long texts are pooled over their sentences.

    Also offers ``token_states(text)`` (:class:`~csassist.core.knowledge.late_chunking.TokenStates`):
    for a long text, the sentences' states side by side, each token's offsets moved to where its
    sentence sits in the text; and ``sentence_vectors(text, sentences)``: the vectors of a long
    text's sentences from the passes that made its vector.  Wraps any encoder; without token states
    (a test fake, a model that is not mean-pooled) every text is encoded whole.

    Every result is a function of the text alone.  With int8 weights a packed run's activations share
    one quantisation scale, so a sentence's vector depends on the sentences packed with it: the
    passes are therefore remembered per *message* (never a sentence borrowed from another message's
    run), and a short text is always encoded alone.  Before this, a message's analysis could differ
    with what had been encoded before it (4 of 204 dev messages changed their top intent between a
    batch of 32 and one of 249).
    """

    def __init__(self, inner: Encoder, capacity: int = MESSAGES_CAPACITY) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.capacity = capacity
        self._messages: OrderedDict[str, _Passes] = OrderedDict()
        self._short: OrderedDict[str, TokenStates] = OrderedDict()
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
            passes = self._message_passes(text)
            if passes is None:
                plain.append(row)
            else:
                out[row] = passes.states.pooled()
        if plain:
            out[plain] = np.asarray(self.inner.encode([texts[i] for i in plain], batch_size), dtype=np.float32)
        return out

    def token_states(self, text: str) -> TokenStates | None:
        """``text``'s token states: its sentences' passes when long, else the wrapped encoder's (remembered)."""
        passes = self._message_passes(text)
        return passes.states if passes is not None else self._short_states(normalize_text(text))

    def sentence_vectors(self, text: str, sentences: Sequence[str]) -> list[np.ndarray | None]:
        """The vectors of ``sentences`` of the long message ``text``, from the passes that made its vector.

        ``None`` for a sentence that is not one of the message's own (or when ``text`` is not read
        sentence by sentence): the caller encodes those itself.
        """
        passes = self._message_passes(text)
        if passes is None:
            return [None] * len(sentences)
        found = (passes.sentences.get(normalize_text(sentence).strip()) for sentence in sentences)
        return [part.pooled() if part is not None else None for part in found]

    # ------------------------------------------------------------------ internals
    def _message_passes(self, text: str) -> _Passes | None:
        """A long text's sentence passes, remembered per message; ``None`` when it is read whole."""
        cleaned = normalize_text(text)
        if len(cleaned.strip()) < LONG_MESSAGE_CHARS or getattr(self.inner, "token_states", None) is None:
            return None
        with self._lock:
            passes = self._messages.get(cleaned)
            if passes is not None:
                self._messages.move_to_end(cleaned)
                return passes
        passes = self._sentence_passes(cleaned)
        if passes is not None:
            with self._lock:
                self._messages[cleaned] = passes
                while len(self._messages) > self.capacity:
                    self._messages.popitem(last=False)
        return passes

    def _sentence_passes(self, cleaned: str) -> _Passes | None:
        """``cleaned``'s sentences, each encoded alone (one packed run, or one pass each), their states
        side by side; ``None`` when it does not split into located sentences or a pass has no states."""
        sentences = split_sentences(cleaned)
        spans = locate_sentences(cleaned, sentences)
        if len(sentences) < 2 or any(span is None for span in spans):
            return None
        states_parts: list[np.ndarray] = []
        offset_parts: list[np.ndarray] = []
        own: dict[str, TokenStates] = {}
        normalize = True
        complete = len(sentences) <= MAX_SENTENCES
        kept = list(zip(sentences, spans, strict=True))[:MAX_SENTENCES]
        passes = self._passes([sentence for sentence, _ in kept])
        for (sentence, span), part in zip(kept, passes, strict=True):
            assert span is not None
            if part is None:
                return None
            own.setdefault(sentence.strip(), part)
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
        states = TokenStates(cleaned, np.vstack(states_parts), np.vstack(offset_parts),
                             normalize=normalize, complete=complete)
        return _Passes(states, own)

    def _passes(self, texts: Sequence[str]) -> list[TokenStates | None]:
        """Each text's states: all in one packed run when the wrapped encoder offers ``packed_states``,
        else one pass each."""
        packer = getattr(self.inner, "packed_states", None)
        if len(texts) > 1 and packer is not None:
            return list(packer(list(texts)))
        getter = getattr(self.inner, "token_states", None)
        return [getter(text) if getter is not None else None for text in texts]

    def _short_states(self, text: str) -> TokenStates | None:
        """One forward pass of the wrapped encoder over ``text`` (remembered); ``None`` without states."""
        with self._lock:
            states = self._short.get(text)
            if states is not None:
                self._short.move_to_end(text)
                return states
        getter = getattr(self.inner, "token_states", None)
        states = getter(text) if getter is not None else None
        if states is not None:
            with self._lock:
                self._short[text] = states
                while len(self._short) > SHORT_CAPACITY:
                    self._short.popitem(last=False)
        return states

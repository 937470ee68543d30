"""The intent model: one type, encoder + linear head (setfit's ``SetFitModel(model_body, model_head)``).

Two ways to get one, one type and one storage format for both:

* **The index head** — ``csassist index`` fits a logistic-regression head on the frozen embeddings
  of the configured embedder (:mod:`csassist.core.learn.intent_head`).  It trains in seconds, costs
  one matrix product per message on top of the embedding the retriever needs anyway, and reaches
  ~93 % on BANKING77.  Saved in ``<index>/intent`` with a *reference* to the embedder (by id).
* **A stored version** — ``csassist finetune --intents`` fine-tunes the encoder itself
  (:mod:`csassist.core.learn.intent_finetune`), and ``finetune --from-log`` refits a head with the
  agents' corrections on top of the model in use.  Saved as versions of the intent model store
  (:func:`csassist.core.learn.store.intent_store`) with the encoder *bundled* in ``encoder/``
  when it is not the configured embedder.

Which one answers (:func:`csassist.core.learn.intent_promotion.load_intent_model`, what the workspace
calls): the promoted store version when there is one, else the index head.  This module does not
know about the store (``understand`` never imports ``learn``): it defines the type and the format.  Every prediction names it (:attr:`IntentModel.model_id`), and :meth:`IntentModel.describe`
says it in words for ``analyze``, ``eval`` and the status bar, so the model in use is never a surprise.

A fine-tuned model may carry a **second opinion**: a linear head on the *configured embedder's* frozen
vectors, fitted on the same training rows, whose probabilities are mixed into the fine-tuned model's
with a weight chosen on the validation split (:class:`SecondOpinion`).  The two make different
mistakes (one has learnt the task into its encoder, the other reads general-purpose sentence vectors
the retriever computes for the message anyway), and their mix is more accurate than either on
BANKING77 (bench/intents.py).

How a model is stored (format 2 directories, the older layouts still read) is
:mod:`csassist.core.understand.intent_format`'s job.

Out of scope: an utterance is OOS when the best probability is below the model's threshold (tuned
on held-out predictions at training time).  :meth:`IntentModel.scores` also exposes the per-class
probabilities and the embeddings, for detectors that combine them with other evidence.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csassist.core.errors import ModelMissingError
from csassist.core.knowledge.embedder import Encoder
from csassist.core.types import IntentExample, IntentPrediction, IntentScore
from csassist.core.understand.kb_vote import KBVote
from csassist.core.understand.lexical import LexicalVote
from csassist.core.understand.requests import lead_weighted, split_requests

TOP_K = 3
#: Longest text (characters) given to the encoder: it truncates to 256 tokens anyway, and tokenising
#: 100 KB of pasted log output would cost tens of milliseconds for nothing.
MAX_CHARS = 2000
#: Where a model came from: the head beside the index, or a version of the intent model store.
ORIGIN_INDEX = "index"
ORIGIN_STORE = "store"
#: How ``short_name``/``describe`` say a stored model's ``report["kind"]``.
KIND_WORDS = {"finetuned": "fine-tuned", "contrastive": "contrastive fine-tuned", "refit": "refitted head"}


def clean_text(text: str) -> str:
    """Whitespace-trimmed and length-capped text as fed to a model ('' means nothing to classify)."""
    return (text or "").strip()[:MAX_CHARS]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax that never returns NaN (non-finite logits are zeroed first)."""
    z = np.nan_to_num(np.asarray(logits, dtype=np.float64), nan=0.0, posinf=50.0, neginf=-50.0)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def prediction_from_probs(
    probs: np.ndarray, labels: Sequence[str], threshold: float, model_id: str, k: int = TOP_K
) -> IntentPrediction:
    """Turn one probability row into an :class:`IntentPrediction` (top ``k``, OOS when best < threshold)."""
    row = np.nan_to_num(np.asarray(probs, dtype=np.float64), nan=0.0)
    order = np.argsort(-row, kind="stable")[: min(k, len(labels))]
    top = tuple(IntentScore(intent=labels[i], probability=float(min(1.0, max(0.0, row[i])))) for i in order)
    best = top[0].probability if top else 0.0
    return IntentPrediction(top=top, out_of_scope=best < threshold, threshold=float(threshold), model=model_id)


def empty_prediction(threshold: float, model_id: str) -> IntentPrediction:
    """What an empty message gets: nothing to classify, so no candidates and out of scope."""
    return IntentPrediction(top=(), out_of_scope=True, threshold=float(threshold), model=model_id)


@dataclass(frozen=True)
class LinearHead:
    """``softmax(embedding @ coef.T + intercept)`` over ``labels``: the classifier on top of the encoder."""

    labels: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray

    def __post_init__(self) -> None:
        if self.coef.ndim != 2 or self.coef.shape[0] != len(self.labels) or self.intercept.shape != (len(self.labels),):
            raise ModelMissingError(
                f"intent head shapes do not match its {len(self.labels)} labels: coef {self.coef.shape}, "
                f"intercept {self.intercept.shape}"
            )

    @property
    def dimension(self) -> int:
        """The embedding size the head expects."""
        return int(self.coef.shape[1])

    def probs(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of embeddings (rows sum to 1, never NaN)."""
        return softmax(np.asarray(embeddings, dtype=np.float32) @ self.coef.T + self.intercept)


def mix_probs(own: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * own + weight * other``: a linear opinion pool (rows still sum to 1)."""
    if weight <= 0.0:
        return own
    return (1.0 - weight) * np.asarray(own, dtype=np.float64) + weight * np.asarray(other, dtype=np.float64)


@dataclass(frozen=True)
class SecondOpinion:
    """A head on the configured embedder's frozen vectors, mixed into a fine-tuned model's probabilities.

    ``weight`` is the second opinion's share (0 < weight < 1), chosen on the validation split when
    the model was trained.  ``encoder`` is the configured embedder (a reference, never bundled): with
    the retriever's memoising encoder its vector is the one the search computes anyway.
    """

    encoder: Encoder
    head: LinearHead
    weight: float

    def __post_init__(self) -> None:
        if self.head.dimension != self.encoder.dimension:
            raise ModelMissingError(
                f"second-opinion head expects {self.head.dimension}-d embeddings, "
                f"encoder {self.encoder.model_id!r} gives {self.encoder.dimension}-d"
            )
        if not (math.isfinite(self.weight) and 0.0 < self.weight < 1.0):
            raise ModelMissingError(f"second-opinion weight must be between 0 and 1, not {self.weight!r}")

    def mixed(self, own: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``own`` probabilities over the same labels, mixed with this head's for ``texts``."""
        vectors = np.asarray(self.encoder.encode(list(texts)), dtype=np.float32)
        return mix_probs(own, self.head.probs(vectors), self.weight)


@dataclass(frozen=True)
class IntentScores:
    """The raw output for a batch: what a prediction is made of, for detectors built on top of it.

    ``probs[i]`` is over ``labels``; ``embeddings[i]`` is the encoder's vector; rows of empty texts
    are all zero (and ``empty[i]`` is true).  ``read[i]`` is the text the encoder read (typo-repaired,
    trimmed) and ``requests[i]`` its requests when it holds two or more (else ``()``), computed once
    here for the ranking, the explanation and the detector.
    """

    labels: tuple[str, ...]
    probs: np.ndarray
    embeddings: np.ndarray
    empty: np.ndarray
    read: tuple[str, ...] = ()
    requests: tuple[tuple[str, ...], ...] = ()


@dataclass
class IntentModel:
    """Encoder + linear head + OOS threshold; how the app, the CLI and the benches classify intents.

    ``origin`` is :data:`ORIGIN_INDEX` or :data:`ORIGIN_STORE`; ``version`` the store version name
    (``None`` for the index head); ``report`` the training report saved with it.
    """

    encoder: Encoder
    head: LinearHead
    threshold: float
    model_id: str
    origin: str = ORIGIN_INDEX
    version: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    #: The KB's second opinion on the ranking (:mod:`csassist.core.understand.kb_vote`); attached where
    #: a retriever is open (:func:`csassist.core.understand.stack.attach_kb`), never saved.
    kb_vote: KBVote | None = field(default=None, compare=False, repr=False)
    #: How the index reads a message before any model does (typo repair towards the KB's words, see
    #: :mod:`csassist.core.knowledge.spelling`); attached with the KB, never saved.  ``None``: as written.
    reading: Callable[[str], str] | None = field(default=None, compare=False, repr=False)
    #: Whether a two-request message's ranking leans to its first request (:mod:`.requests`).
    lead_request: bool = field(default=True, compare=False, repr=False)
    #: A frozen-embedder head mixed into this model's probabilities (fine-tuned models; see :class:`SecondOpinion`).
    second_opinion: SecondOpinion | None = field(default=None, compare=False, repr=False)
    #: The index's word/character n-gram opinion on the ranking (:mod:`csassist.core.understand.lexical`);
    #: attached with the KB (:func:`csassist.core.understand.stack.attach_kb`), saved beside the index head.
    lexical: LexicalVote | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.head.dimension != self.encoder.dimension:
            raise ModelMissingError(
                f"intent model {self.model_id}: head expects {self.head.dimension}-d embeddings, "
                f"encoder {self.encoder.model_id!r} gives {self.encoder.dimension}-d"
            )
        if self.second_opinion is not None and self.second_opinion.head.labels != self.head.labels:
            raise ModelMissingError(f"intent model {self.model_id}: the second opinion's labels differ from the head's")
        if not math.isfinite(self.threshold):
            self.threshold = 0.5

    @property
    def labels(self) -> list[str]:
        """The intents the model knows, in head order."""
        return list(self.head.labels)

    @property
    def bundles_encoder(self) -> bool:
        """Whether the encoder is part of the model (fine-tuned) rather than the configured embedder."""
        return not is_reference(self.encoder)

    def short_name(self) -> str:
        """A few words for the status bar: ``index head`` or ``v0003-… fine-tuned``."""
        if self.origin == ORIGIN_INDEX:
            return "index head"
        kind = KIND_WORDS.get(str(self.report.get("kind")), "")
        mixed = " + frozen head" if self.second_opinion is not None else ""
        return f"{self.version or self.model_id} {kind}{mixed}".strip()

    def describe(self) -> str:
        """Which model this is, in words: ``index head (head-…)`` or ``fine-tuned v0003-… (store)``."""
        if self.origin == ORIGIN_INDEX:
            return f"index head {self.model_id} on {self.encoder.model_id}"
        kind = KIND_WORDS.get(str(self.report.get("kind")), "model")
        second = self.second_opinion
        mixed = (f" mixed {1 - second.weight:.0%}/{second.weight:.0%} with a frozen head on {second.encoder.model_id}"
                 if second is not None else "")
        return f"{kind} {self.version or self.model_id} (intent model store){mixed}"

    def model_text(self, text: str) -> str:
        """What the encoder reads for ``text``: read as the KB's index reads it, trimmed and capped."""
        return clean_text(self.reading(text) if self.reading is not None and text else text)

    def scores(self, texts: Sequence[str]) -> IntentScores:
        """Per-class probabilities and embeddings for ``texts`` (one encoder call for the batch)."""
        cleaned = [self.model_text(t) for t in texts]
        todo = [i for i, t in enumerate(cleaned) if t]
        probs = np.zeros((len(cleaned), len(self.head.labels)), dtype=np.float64)
        emb = np.zeros((len(cleaned), self.encoder.dimension), dtype=np.float32)
        if todo:
            vectors = np.asarray(self.encoder.encode([cleaned[i] for i in todo]), dtype=np.float32)
            emb[todo] = vectors
            probs[todo] = self._mixed(self.head.probs(vectors), [cleaned[i] for i in todo])
        empty = np.ones(len(cleaned), dtype=bool)
        empty[todo] = False
        requests = tuple(tuple(split_requests(t)) if self.lead_request and t else () for t in cleaned)
        return IntentScores(labels=self.head.labels, probs=probs, embeddings=emb, empty=empty,
                            read=tuple(cleaned), requests=requests)

    def _mixed(self, probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``probs`` (this head's, for ``texts``) with the second opinion mixed in, when there is one."""
        return probs if self.second_opinion is None else self.second_opinion.mixed(probs, texts)

    def predict(self, text: str) -> IntentPrediction:
        """Classify one message: top 3 intents (probabilities sum <= 1, never NaN) and the OOS verdict."""
        return self.predict_batch([text])[0]

    def ranking_probs(self, texts: Sequence[str], scored: IntentScores) -> np.ndarray:
        """The probabilities that order the candidates: the model's (a two-request message leaning to its
        first request), mixed with the KB's vote and then the lexical vote when attached.

        Empty rows stay zero.  Out-of-scope verdicts never read these (see :meth:`predictions`).
        """
        probs = self._lead_request_probs(scored)
        if (self.kb_vote is None and self.lexical is None) or not len(self.labels):
            return probs
        todo = [i for i in range(len(texts)) if not scored.empty[i]]
        out = probs.copy()
        if todo:
            read = [scored.read[i] for i in todo]
            if self.kb_vote is not None:
                out[todo] = self.kb_vote.mix(read, probs[todo], self.labels)
            if self.lexical is not None:
                out[todo] = mix_probs(out[todo], self._lexical_probs(scored, todo), self.lexical.weight)
        return out

    def _lexical_probs(self, scored: IntentScores, todo: Sequence[int]) -> np.ndarray:
        """The lexical vote for rows ``todo``, a two-request message's leaning to its first request like the head's."""
        assert self.lexical is not None
        probs = self.lexical.probs([scored.read[i] for i in todo])
        parts = [(row, scored.requests[i]) for row, i in enumerate(todo) if scored.requests[i]]
        if parts:
            part_probs = self.lexical.probs([p for _, requests in parts for p in requests])
            start = 0
            for row, requests in parts:
                probs[row] = lead_weighted(probs[row], part_probs[start : start + len(requests)])
                start += len(requests)
        return probs

    def _lead_request_probs(self, scored: IntentScores) -> np.ndarray:
        """``scored.probs`` with two-request messages leaning to their first request (:mod:`.requests`).

        Returns ``scored.probs`` itself when no message holds two requests (one encoder call for all
        the parts otherwise).
        """
        if not len(self.labels):
            return scored.probs
        parts = {i: p for i, p in enumerate(scored.requests) if p and not scored.empty[i]}
        if not parts:
            return scored.probs
        flat = [p for i in parts for p in parts[i]]
        part_probs = self._mixed(self.head.probs(np.asarray(self.encoder.encode(flat), dtype=np.float32)), flat)
        out = scored.probs.copy()
        start = 0
        for i, requests in parts.items():
            out[i] = lead_weighted(scored.probs[i], part_probs[start : start + len(requests)])
            start += len(requests)
        return out

    def predictions(self, texts: Sequence[str], scored: IntentScores) -> list[IntentPrediction]:
        """Top candidates from :meth:`ranking_probs`, the softmax verdict from the model's own best probability."""
        ranked = self.ranking_probs(texts, scored)
        out = []
        for i, text in enumerate(texts):
            if scored.empty[i]:
                out.append(empty_prediction(self.threshold, self.model_id))
                continue
            own = prediction_from_probs(scored.probs[i], self.labels, self.threshold, self.model_id)
            pred = own
            if ranked is not scored.probs:
                pred = prediction_from_probs(ranked[i], self.labels, self.threshold, self.model_id)
                pred = dataclasses.replace(pred, out_of_scope=own.out_of_scope, own_top=own.top)
            read, requests = scored.read[i], scored.requests[i]
            if read != clean_text(text) or requests:
                pred = dataclasses.replace(pred, read_as=read if read != clean_text(text) else "", requests=requests)
            out.append(pred)
        return out

    def predict_batch(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify many messages with one encoder call; empty ones are out of scope with no candidates."""
        return self.predictions(texts, self.scores(texts))


def is_reference(encoder: Encoder) -> bool:
    """Whether ``encoder`` is one the app loads by id (the configured embedder), not a bundled body."""
    from csassist.core.understand.intent_encoder import TransformerEncoder

    return not isinstance(encoder, TransformerEncoder)


def label_counts(examples: Sequence[IntentExample]) -> Counter[str]:
    """How many examples each label has (``oos`` included), for reports."""
    return Counter(e.intent for e in examples)

"""The intent ranking's lexical opinion: word and character n-grams the sentence embedding blurs.

Why: a sentence embedding places "can I get a copy of the invoice" near every other polite request
about an order, while the words "invoice", "gift card", "unsubscribe" or "twice" decide the intent.
A logistic regression on TF-IDF word 1-2-grams and character 2-5-grams (within words, so "recieved"
still shares most of its n-grams with "received") reads exactly those, and the two opinions make
different mistakes.  ``csassist index`` fits it on the same rows as the head and picks its share of
the ranking by cross-validation on those rows (:mod:`csassist.core.learn.lexical_fit`); on the dev set
(1,106 KB rows, share 0.6 chosen by the cross-validation) top-1 after the verdict went 0.873 -> 0.907
and top-3 0.985 -> 0.995 (bench/understanding.py).  A two-request message's vote leans to its first
request, as the head's does (without that, two-request messages lost 0.73 -> 0.53 closed-set).

Like the KB's vote it changes only the *ranking* of the candidates; the out-of-scope verdict keeps
the model's own probabilities (the detector was fitted on those).  Saved beside the index head as
``lexical.npz`` (vocabularies, idf, coefficients) + ``lexical.json`` (labels, weight, vectoriser
settings): no pickles, so a stray file can never run code.  scikit-learn is imported only when a
message is first analysed (its analysers; the TF-IDF product is this module's own).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.errors import ModelMissingError

FORMAT = 1
#: The two vectorisers' settings (scikit-learn ``TfidfVectorizer`` keyword arguments), in feature order.
VECTORISERS: tuple[dict[str, Any], ...] = (
    {"analyzer": "word", "ngram_range": (1, 2), "sublinear_tf": True},
    {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True},
)
META_FILE = "lexical.json"
ARRAYS_FILE = "lexical.npz"


@lru_cache(maxsize=1)
def _shared_analyzers() -> tuple[Any, ...]:
    """One analyser per entry of :data:`VECTORISERS` (an analyser does not depend on a vocabulary)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return tuple(TfidfVectorizer(**settings).build_analyzer() for settings in VECTORISERS)


@lru_cache(maxsize=256)
def analysed(text: str) -> tuple[tuple[str, ...], ...]:
    """``text``'s terms under each of :data:`VECTORISERS`, remembered for the last messages.

    Why shared: every vote built on these settings reads the same message -- the intent ranking's
    lexical vote and the out-of-scope detector's word probe -- and the analysis (character 2-5-grams
    of every word) is most of a vote's cost, ~0.5 ms a message on one thread.
    """
    return tuple(tuple(analyzer(text)) for analyzer in _shared_analyzers())


def _tfidf_dot(terms: Sequence[str], vocabulary: dict[str, int], idf: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``TfidfVectorizer(sublinear_tf=True).transform([text]) @ block`` from the text's analysed ``terms``.

    The same arithmetic as scikit-learn's (counts of in-vocabulary terms, ``1 + log(count)``, times idf,
    L2-normalised), without its per-call input validation and sparse-matrix building.  Micro-timed on one
    thread: scikit-learn's path 1.7 ms for a ~100-character message; this one 0.17 ms for a short message
    and 1.0 ms for the dev set's longest -- the one-thread analyse + retrieve budget notices the difference.
    """
    counts: dict[int, int] = {}
    for term in terms:
        column = vocabulary.get(term)
        if column is not None:
            counts[column] = counts.get(column, 0) + 1
    if not counts:
        return np.zeros(block.shape[1])
    columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[columns]
    weights /= np.linalg.norm(weights)
    return weights @ block[columns]  # type: ignore[no-any-return]


class LexicalVote:
    """``softmax(tfidf(text) @ coef.T + intercept)`` over ``labels``, mixed into a ranking at ``weight``."""

    def __init__(self, labels: Sequence[str], vocabularies: Sequence[dict[str, int]], idfs: Sequence[np.ndarray],
                 coef: np.ndarray, intercept: np.ndarray, weight: float) -> None:
        self.labels = tuple(labels)
        self.vocabularies = [dict(v) for v in vocabularies]
        self.idfs = [np.asarray(i, dtype=np.float64) for i in idfs]
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.weight = float(weight)
        features = sum(len(v) for v in self.vocabularies)
        if len(self.vocabularies) != len(VECTORISERS) or [len(v) for v in self.vocabularies] != [len(i) for i in self.idfs]:
            raise ModelMissingError("lexical vote: vocabularies and idf vectors do not match")
        if self.coef.shape != (len(self.labels), features) or self.intercept.shape != (len(self.labels),):
            raise ModelMissingError(f"lexical vote: coefficients {self.coef.shape} do not fit {len(self.labels)} labels x {features} features")
        if not (np.isfinite(self.weight) and 0.0 <= self.weight < 1.0):
            raise ModelMissingError(f"lexical vote: weight must be in [0, 1), not {self.weight!r}")
        # Each vectoriser's block of the coefficients, transposed and contiguous: a sparse row times a
        # strided view of coef.T took 2.3 ms a message, times a contiguous block 0.01 ms.
        edges = np.cumsum([0] + [len(v) for v in self.vocabularies])
        self._blocks = [np.ascontiguousarray(self.coef[:, a:b].T) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for ``texts`` (rows sum to 1)."""
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        logits = np.tile(self.intercept, (len(texts), 1))
        for row, text in enumerate(texts):
            for terms, vocabulary, idf, block in zip(analysed(text), self.vocabularies, self.idfs, self._blocks,
                                                     strict=True):
                logits[row] += _tfidf_dot(terms, vocabulary, idf, block)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ storage
    def save(self, directory: Path) -> None:
        """Write ``lexical.json`` + ``lexical.npz`` into an existing (temporary) ``directory``."""
        arrays: dict[str, np.ndarray] = {"coef": self.coef.astype(np.float32), "intercept": self.intercept}
        for k, (vocabulary, idf) in enumerate(zip(self.vocabularies, self.idfs, strict=True)):
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            arrays[f"terms{k}"] = np.array(terms, dtype=np.str_)
            arrays[f"idf{k}"] = idf
        np.savez_compressed(Path(directory) / ARRAYS_FILE, **arrays)  # type: ignore[arg-type]
        meta = {"format": FORMAT, "labels": list(self.labels), "weight": self.weight,
                "vectorisers": [{**s, "ngram_range": list(s["ngram_range"])} for s in VECTORISERS]}
        (Path(directory) / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LexicalVote | None:
        """The vote saved in ``directory``; ``None`` when there is none, :class:`ModelMissingError` when broken."""
        meta_path = Path(directory) / META_FILE
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"unknown format {meta.get('format')!r}")
            with np.load(Path(directory) / ARRAYS_FILE, allow_pickle=False) as arrays:
                vocabularies = [{str(t): i for i, t in enumerate(arrays[f"terms{k}"])} for k in range(len(VECTORISERS))]
                idfs = [arrays[f"idf{k}"] for k in range(len(VECTORISERS))]
                return cls(meta["labels"], vocabularies, idfs, arrays["coef"], arrays["intercept"], float(meta["weight"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelMissingError(f"{directory}: lexical intent vote unreadable ({exc}); run `csassist index`") from exc

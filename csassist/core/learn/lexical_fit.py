"""Fitting the lexical intent vote (:mod:`csassist.core.understand.lexical`) and choosing its share.

The share is chosen where nothing is tuned on the dev set: 5-fold cross-validation on the KB's own
in-scope rows, mixing the embedding head's held-out probabilities with the lexical model's, from the
same grid and rule as a fine-tuned model's second opinion (accuracy, then log-loss; 0 when the mix
does not help, and then no vote is saved).  The folds ignore the KB's vote and the lead request, so
the chosen share is an upper bound for the full ranking; measured on the dev set the gain held from
0.3 to 0.6 (bench/understanding.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from csassist.core.learn.intent_head import coefficients_over_labels, fit_linear_head
from csassist.core.learn.second_opinion import choose_weight
from csassist.core.understand.lexical import VECTORISERS, LexicalVote

#: Inverse regularisation of the lexical logistic regression (10 measured best of 3/10/30 by cross-validation).
LEXICAL_C = 10.0
#: Character n-grams seen in fewer rows than this are dropped (noise, and a smaller file).
CHAR_MIN_DF = 2
FOLDS = 5
#: An n-gram that ends in punctuation ("y. ", "?! ", ". ") or holds nothing else: how a message is
#: written, not what it is about.  ".com" or "£45" (punctuation inside a word) are kept.
SENTENCE_PUNCTUATION = re.compile(r"[^\w\s]\s*$|^[^\w]*$")


def _topic_columns(terms: Sequence[str]) -> np.ndarray:
    """Indices of ``terms`` (a vectoriser's, in column order) that are not :data:`SENTENCE_PUNCTUATION` n-grams."""
    return np.array([i for i, term in enumerate(terms) if not SENTENCE_PUNCTUATION.search(term)], dtype=np.int64)


def fit_lexical(texts: Sequence[str], y: np.ndarray, labels: Sequence[str], weight: float = 0.0,
                c: float = LEXICAL_C, seed: int = 13, *, topic_terms_only: bool = False) -> LexicalVote:
    """TF-IDF (word 1-2-grams + character 2-5-grams) and a logistic regression on ``texts``; ``y`` indexes ``labels``.

    ``topic_terms_only`` leaves out the :data:`SENTENCE_PUNCTUATION` n-grams, for a model that must
    not learn writing style: the off-topic word probe learned ". " (a second sentence) as its strongest
    off-topic cue, because the KB's questions are one sentence and its spam and pitches several, and
    then flagged angry or indirect real questions for their full stops.  Each vectoriser's block is
    L2-normalised over the terms kept, as :class:`LexicalVote` normalises a message over its vocabulary.
    """
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    vectorisers = [TfidfVectorizer(**settings, min_df=CHAR_MIN_DF if settings["analyzer"] != "word" else 1)
                   for settings in VECTORISERS]
    blocks, vocabularies, idfs = [], [], []
    for vectoriser in vectorisers:
        block = vectoriser.fit_transform(list(texts))
        terms = [str(t) for t in vectoriser.get_feature_names_out()]  # in column order
        columns = _topic_columns(terms) if topic_terms_only else np.arange(len(terms))
        blocks.append(normalize(block[:, columns]) if topic_terms_only else block)
        vocabularies.append({terms[column]: i for i, column in enumerate(columns)})
        idfs.append(vectoriser.idf_[columns])
    matrix = hstack(blocks).tocsr()
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(matrix, y)
    coef, intercept = coefficients_over_labels(model, len(labels), matrix.shape[1])
    return LexicalVote(labels, vocabularies, idfs, coef, intercept, weight)


def fit_lexical_vote(texts: Sequence[str], vectors: np.ndarray, y: np.ndarray, labels: Sequence[str],
                     seed: int = 13) -> tuple[LexicalVote | None, dict[str, Any]]:
    """The vote for the index head fitted on (``texts``, ``vectors``, ``y``), or ``None`` when it does not help.

    ``vectors`` are the embedder's rows for ``texts`` (the head's own inputs), used only for the
    cross-validated comparison.  Returns the vote and a report (weight, cross-validated accuracies).
    """
    started = time.perf_counter()
    y = np.asarray(y)
    counts = np.bincount(y, minlength=len(labels))
    if len(y) < 2 * FOLDS or (counts[counts > 0] < 2).all():
        return None, {"status": "skipped: too few rows to cross-validate"}
    rng = np.random.default_rng(seed)
    folds = rng.integers(0, FOLDS, len(y))
    embedded = np.zeros((len(y), len(labels)))
    lexical = np.zeros((len(y), len(labels)))
    for fold in range(FOLDS):
        train, held = folds != fold, folds == fold
        if not held.any() or len(np.unique(y[train])) < 2:
            continue
        embedded[held] = fit_linear_head(vectors[train], y[train], labels, seed).probs(vectors[held])
        train_texts = [texts[int(i)] for i in np.flatnonzero(train)]
        held_texts = [texts[int(i)] for i in np.flatnonzero(held)]
        lexical[held] = fit_lexical(train_texts, y[train], labels, seed=seed).probs(held_texts)
    weight, table = choose_weight(embedded, lexical, y)
    report: dict[str, Any] = {
        "status": "fitted" if weight > 0 else "not used: no gain in cross-validation",
        "weight": weight,
        "cv_accuracy_head": table[0]["val_accuracy"],
        "cv_accuracy_mixed": next(r["val_accuracy"] for r in table if r["weight"] == weight),
        "cv_accuracy_lexical_alone": float(np.mean(lexical.argmax(1) == y)),
        "by_weight": table,
    }
    vote = fit_lexical(texts, y, labels, weight, seed=seed) if weight > 0 else None
    report["seconds"] = round(time.perf_counter() - started, 2)
    return vote, report

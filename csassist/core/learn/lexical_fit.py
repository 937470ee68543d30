"""Fitting the lexical intent vote (:mod:`csassist.core.understand.lexical`) and choosing its share.

The share is chosen where nothing is tuned on the dev set: 5-fold cross-validation on the KB's own
in-scope rows, mixing the embedding head's held-out probabilities with the lexical model's, from the
same grid and rule as a fine-tuned model's second opinion (accuracy, then log-loss; 0 when the mix
does not help, and then no vote is saved).  The folds ignore the KB's vote and the lead request, so
the chosen share is an upper bound for the full ranking; measured on the dev set the gain held from
0.3 to 0.6 (bench/understanding.py).
"""

from __future__ import annotations

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


def fit_lexical(texts: Sequence[str], y: np.ndarray, labels: Sequence[str], weight: float = 0.0,
                c: float = LEXICAL_C, seed: int = 13) -> LexicalVote:
    """TF-IDF (word 1-2-grams + character 2-5-grams) and a logistic regression on ``texts``; ``y`` indexes ``labels``."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorisers = [TfidfVectorizer(**settings, min_df=CHAR_MIN_DF if settings["analyzer"] != "word" else 1)
                   for settings in VECTORISERS]
    matrix = hstack([v.fit_transform(list(texts)) for v in vectorisers]).tocsr()
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(matrix, y)
    coef, intercept = coefficients_over_labels(model, len(labels), matrix.shape[1])
    vocabularies = [{str(t): int(i) for t, i in v.vocabulary_.items()} for v in vectorisers]
    return LexicalVote(labels, vocabularies, [v.idf_ for v in vectorisers], coef, intercept, weight)


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

"""Fitting the out-of-scope detector (:mod:`csassist.core.understand.oos`) on a KB's rows.

Why here and not beside the detector: the fit reuses the lexical intent vote's fitting
(:func:`~csassist.core.learn.lexical_fit.fit_lexical`) for its word probe, and ``learn`` may import
``understand`` but not the other way round.  What the detector is, and why each feature, is said in
:mod:`csassist.core.understand.oos`.

Every training row's features are computed as they would be for an unseen message: intent
probabilities from 5-fold heads, nearest neighbours excluding the row itself, both probes' scores
from cross-validation folds.  The threshold is chosen on cross-validated scores too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.errors import DataError
from csassist.core.knowledge.embedder import Encoder
from csassist.core.learn.lexical_fit import fit_lexical
from csassist.core.types import IntentExample
from csassist.core.understand.intent import clean_text
from csassist.core.understand.intent_data import OOS_LABEL
from csassist.core.understand.lexical import LexicalVote
from csassist.core.understand.oos import FEATURES, WORD_LABELS, KBSimilarity, OOSDetector, prob_features

#: Inverse regularisation of the cross-validation heads (the index head's value: probabilities alike).
HEAD_C = 20.0
#: Inverse regularisation of the linear off-topic probe (scikit-learn's default; 0.3-3 measured alike).
PROBE_C = 1.0
#: Real questions the threshold may flag on cross-validated training data: issue 9's budget (0.05).
#: Was 0.03 (for headroom on unseen wording); with the KB's phrasings in training and the other-shop
#: negatives in offtopic.csv, 0.05 flags 0.049 of the dev set's real questions and raises OOS recall.
TARGET_FLAGGED = 0.05


def _cv_probabilities(x: np.ndarray, y: np.ndarray, negatives: np.ndarray, n_classes: int, seed: int,
                      folds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Held-out intent probabilities for in-scope rows and for off-topic rows (5-fold linear heads)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    fold_of = rng.integers(0, folds, size=len(x))
    neg_fold = rng.integers(0, folds, size=len(negatives))
    p_in = np.zeros((len(x), n_classes))
    p_neg = np.zeros((len(negatives), n_classes))
    for f in range(folds):
        train, test = fold_of != f, fold_of == f
        if len(np.unique(y[train])) < 2 or not test.any():
            continue
        model = LogisticRegression(C=HEAD_C, max_iter=1000, random_state=seed).fit(x[train], y[train])
        p_in[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
        mask = neg_fold == f
        if mask.any():
            p_neg[np.ix_(mask, model.classes_)] = model.predict_proba(negatives[mask])
    return p_in, p_neg


def _fit_probe(x: np.ndarray, negatives: np.ndarray, seed: int, folds: int = 5) -> tuple[np.ndarray, Any]:
    """The off-topic probe: cross-validated P(off-topic) for every training row, and the probe fitted on all.

    Rows are in-scope examples then negatives, in that order.  The held-out scores are what the
    detector's logistic regression learns from, so it does not trust a probe that saw the row.
    """
    from sklearn.linear_model import LogisticRegression

    rows = np.vstack([x, negatives])
    target = np.concatenate([np.zeros(len(x)), np.ones(len(negatives))])
    fold_of = np.random.default_rng(seed + 1).integers(0, folds, size=len(rows))
    held = np.zeros(len(rows))

    def fit(mask: np.ndarray) -> Any:
        return LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=2000).fit(rows[mask], target[mask])

    for f in range(folds):
        train, test = fold_of != f, fold_of == f
        if len(np.unique(target[train])) < 2 or not test.any():
            continue
        held[test] = fit(train).predict_proba(rows[test])[:, 1]
    return held, fit(np.ones(len(rows), dtype=bool))


def _fit_word_probe(texts: Sequence[str], target: np.ndarray, seed: int,
                    folds: int = 5) -> tuple[np.ndarray, LexicalVote]:
    """The word probe: cross-validated P(off-topic) for every row of ``texts`` and the probe fitted on all.

    The lexical intent vote's model (TF-IDF word 1-2-grams + character 2-5-grams, logistic
    regression, :data:`~csassist.core.learn.lexical_fit.LEXICAL_C`) with two labels; ``target`` is 1
    for off-topic rows.  Held-out scores, as for the embedding probe.  Without n-grams of sentence
    punctuation (``topic_terms_only``): with them the probe's strongest off-topic term was ". ", and
    removing a message's full stops changed 2.4 % of the dev set's verdicts (OOS recall 0.887 -> 0.838);
    without them 0.7 %.
    """
    fold_of = np.random.default_rng(seed + 2).integers(0, folds, size=len(texts))
    held = np.zeros(len(texts))
    for f in range(folds):
        train, test = np.flatnonzero(fold_of != f).tolist(), np.flatnonzero(fold_of == f).tolist()
        if len(np.unique(target[train])) < 2 or not len(test):
            continue
        probe = fit_lexical([texts[i] for i in train], target[train], WORD_LABELS, seed=seed, topic_terms_only=True)
        held[test] = probe.probs([texts[i] for i in test])[:, 1]
    return held, fit_lexical(list(texts), target, WORD_LABELS, seed=seed, topic_terms_only=True)


def choose_oos_threshold(p_in: np.ndarray, p_neg: np.ndarray, target_flagged: float = TARGET_FLAGGED) -> float:
    """The lowest threshold that flags at most ``target_flagged`` of in-scope rows (max OOS recall)."""
    if not len(p_in):
        return 0.5
    candidates = np.unique(np.concatenate([p_in, p_neg, [1.0 + 1e-9]]))
    for t in candidates:
        if float(np.mean(p_in >= t)) <= target_flagged:
            return float(t)
    return 1.0 + 1e-9


def fit_oos_detector(
    examples: Sequence[IntentExample],
    encoder: Encoder,
    out_dir: Path,
    *,
    kb_similarity: KBSimilarity | None = None,
    seed: int = 13,
) -> dict[str, Any]:
    """Fit the detector from labelled examples (``oos`` rows are the negatives) and save it to ``out_dir``.

    ``kb_similarity`` gives the best KB match of each vector (the index's
    :meth:`~csassist.core.knowledge.retrieval.Retriever.best_similarity`); without it the feature is 0.
    Raises :class:`DataError` without off-topic examples or with fewer than two intents.
    """
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    rows = [(clean_text(e.text), e.intent.strip()) for e in examples]
    rows = [(t, label) for t, label in rows if t and label]
    in_scope = [(t, label) for t, label in rows if label != OOS_LABEL]
    off_topic = list(dict.fromkeys(t for t, label in rows if label == OOS_LABEL))
    labels = sorted({label for _, label in in_scope})
    if len(labels) < 2:
        raise DataError("the out-of-scope detector needs in-scope examples of at least two intents")
    if len(off_topic) < 5:
        raise DataError("the out-of-scope detector needs off-topic examples (kb/offtopic.csv, intent=oos)")
    x = np.asarray(encoder.encode([t for t, _ in in_scope]), dtype=np.float32)
    xn = np.asarray(encoder.encode(off_topic), dtype=np.float32)
    y = np.array([labels.index(label) for _, label in in_scope])
    p_in, p_neg = _cv_probabilities(x, y, xn, len(labels), seed)
    kb_in = kb_similarity(x) if kb_similarity is not None else np.zeros(len(x))
    kb_neg = kb_similarity(xn) if kb_similarity is not None else np.zeros(len(xn))

    held_probe, linear_probe = _fit_probe(x, xn, seed)
    texts = [t for t, _ in in_scope] + off_topic
    held_words, word_probe = _fit_word_probe(texts, np.concatenate([np.zeros(len(x)), np.ones(len(xn))]).astype(np.int64),
                                             seed)
    draft = OOSDetector(
        examples=x, example_texts=[t for t, _ in in_scope], example_labels=[label for _, label in in_scope],
        negatives=xn, coef=np.zeros(len(FEATURES)), intercept=0.0, mean=np.zeros(len(FEATURES)),
        scale=np.ones(len(FEATURES)), threshold=0.5, encoder_id=encoder.model_id,
        probe_coef=linear_probe.coef_[0], probe_intercept=float(linear_probe.intercept_[0]),
    )
    top_in, margin_in = prob_features(p_in)
    top_neg, margin_neg = prob_features(p_neg)
    f_in = draft.features(x, top_in, margin_in, kb_in, held_words[: len(x)], exclude_self=np.arange(len(x)),
                          probe=held_probe[: len(x)])
    f_neg = draft.features(xn, top_neg, margin_neg, kb_neg, held_words[len(x):], exclude_negative=np.arange(len(xn)),
                           probe=held_probe[len(x):])
    features = np.vstack([f_in, f_neg])
    target = np.concatenate([np.zeros(len(f_in)), np.ones(len(f_neg))])
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    z = (features - mean) / scale

    # Cross-validated scores for the threshold (the final model is fitted on everything).
    rng = np.random.default_rng(seed)
    fold_of = rng.integers(0, 5, size=len(z))
    held = np.zeros(len(z))
    for f in range(5):
        train, test = fold_of != f, fold_of == f
        if len(np.unique(target[train])) < 2 or not test.any():
            continue
        lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(z[train], target[train])
        held[test] = lr.predict_proba(z[test])[:, 1]
    threshold = choose_oos_threshold(held[target == 0], held[target == 1])
    final = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(z, target)
    report = {
        "in_scope_examples": len(x),
        "off_topic_examples": len(xn),
        "threshold": round(threshold, 4),
        "cv_in_scope_flagged": float(np.mean(held[target == 0] >= threshold)),
        "cv_oos_recall": float(np.mean(held[target == 1] >= threshold)),
        "coefficients": {name: round(float(c), 3) for name, c in zip(FEATURES, final.coef_[0], strict=True)},
        "kb_feature": kb_similarity is not None,
        "seconds": round(time.perf_counter() - started, 2),
    }
    detector = OOSDetector(
        examples=x, example_texts=draft.example_texts, example_labels=draft.example_labels, negatives=xn,
        coef=final.coef_[0], intercept=float(final.intercept_[0]), mean=mean, scale=scale, threshold=threshold,
        encoder_id=encoder.model_id, probe_coef=draft.probe_coef, probe_intercept=draft.probe_intercept,
        words=word_probe, report=report,
    )
    detector.save(out_dir)
    return report

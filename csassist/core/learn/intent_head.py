"""Fitting the intent head on frozen embeddings, and choosing the out-of-scope threshold.

Why a logistic regression on frozen sentence embeddings: it trains in seconds whenever the KB is
indexed (the embedder is already loaded for retrieval) and reaches ~93 % on BANKING77.  ``csassist
index`` fits it from the KB's examples (:func:`fit_intent_head`); the learning loop refits it with the
agents' corrections on top of whatever encoder is in use (:func:`fit_head`, see
:mod:`csassist.core.learn.intent_promotion`).

Out of scope: rows labelled ``oos`` are not a class; they are only used to pick the threshold
(:func:`choose_threshold`) from held-out predictions (cross-validation folds, or one stratified
hold-out fold for large data).  Without ``oos`` rows the threshold keeps ~95 % of correct held-out
predictions in scope.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.errors import DataError
from csassist.core.knowledge.embedder import Encoder
from csassist.core.types import IntentExample
from csassist.core.understand.intent import ORIGIN_INDEX, IntentModel, LinearHead, clean_text
from csassist.core.understand.intent_data import OOS_LABEL, check_trainable
from csassist.core.understand.intent_format import save_model

#: Inverse regularisation of the logistic regression.  Embeddings are unit vectors, so logits are
#: small; a weak penalty gives both the best BANKING77 accuracy and usable (not flat) probabilities.
DEFAULT_C = 20.0
#: Above this many in-scope examples, one hold-out fold replaces full cross-validation (time).
FULL_CV_LIMIT = 3000


def _assign_folds(labels: Sequence[str], k: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified fold ids; intents with a single example get -1 (always in training)."""
    folds = np.full(len(labels), -1, dtype=np.int64)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for idx in by_label.values():
        if len(idx) < 2:
            continue
        perm = rng.permutation(len(idx))
        start = int(rng.integers(k))
        for j, p in enumerate(perm):
            folds[idx[p]] = (start + j) % k
    return folds


def _fit_lr(x: np.ndarray, y: np.ndarray, seed: int, c: float) -> Any:
    """A multinomial logistic regression (lbfgs); imported lazily so predicting never needs sklearn."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    model.fit(x, y)
    return model


def fit_linear_head(x: np.ndarray, y: np.ndarray, labels: Sequence[str], seed: int = 13, c: float = DEFAULT_C) -> LinearHead:
    """A logistic regression on ``x`` (rows of unit vectors) as a :class:`LinearHead` over all ``labels``.

    ``y[i]`` indexes ``labels``; a label without rows keeps zero weights.  Used for the index head and
    for a fine-tuned model's second opinion (:class:`~csassist.core.understand.intent.SecondOpinion`).
    """
    coef, intercept = coefficients_over_labels(_fit_lr(x, y, seed, c), len(labels), x.shape[1])
    return LinearHead(tuple(labels), coef.astype(np.float32), intercept.astype(np.float32))


def coefficients_over_labels(model: Any, n_labels: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted scikit-learn logistic regression's ``(coef, intercept)`` with one row per label.

    Labels the model never saw keep zero rows; sklearn's binary shape (one row, for the second class)
    becomes that class's row, the first class's staying zero (the same softmax).
    """
    coef = np.zeros((n_labels, n_features))
    intercept = np.zeros(n_labels)
    if len(model.classes_) == 2 and model.coef_.shape[0] == 1:
        coef[model.classes_[1]], intercept[model.classes_[1]] = model.coef_[0], model.intercept_[0]
    else:
        coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
    return coef, intercept


def _full_probs(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all ``n_classes`` even when a fold model saw only some of them."""
    out = np.zeros((len(x), n_classes), dtype=np.float64)
    if len(x):
        out[:, model.classes_] = model.predict_proba(x)
    return out


def choose_threshold(
    in_scope_best: np.ndarray, in_scope_correct: np.ndarray, oos_best: np.ndarray, n_classes: int
) -> tuple[float, dict[str, float | None]]:
    """Pick the OOS threshold from held-out best-probabilities; return it and what it achieves.

    With OOS examples: maximise overall accuracy with "out of scope" counted as one more class (the
    CLINC150 convention): in-scope rows must be correct *and* accepted, OOS rows must be rejected.
    Counting rows (not averaging the two rates) keeps a handful of OOS examples from pushing the
    threshold so high that ordinary requests get rejected; OOS rows get at least a quarter of the
    weight so that a few of them still matter.
    Without: the 5th percentile of correct predictions' confidence, so ~95 % of them stay in scope,
    clipped to [1.5 / n_classes, 0.5] so that it neither rejects everything nor nothing.
    """
    floor = min(0.5, 1.5 / max(n_classes, 2))
    if len(in_scope_best) == 0:
        return floor, {"in_scope_accuracy": None, "oos_recall": None}
    if len(oos_best):
        candidates = np.unique(np.concatenate([in_scope_best, oos_best, [0.0, 1.0 + 1e-9]]))
        best_t, best_score = floor, -1.0
        w_oos = max(0.25, len(oos_best) / (len(oos_best) + len(in_scope_best)))
        for t in candidates:
            acc = float(np.mean(in_scope_correct & (in_scope_best >= t)))
            rec = float(np.mean(oos_best < t))
            score = (1.0 - w_oos) * acc + w_oos * rec
            if score > best_score + 1e-12:
                best_t, best_score = float(t), score
        threshold = best_t
    else:
        correct = in_scope_best[in_scope_correct]
        threshold = float(np.percentile(correct, 5)) if len(correct) else floor
        threshold = float(min(0.5, max(floor, threshold)))
    accepted = float(np.mean(in_scope_correct & (in_scope_best >= threshold)))
    recall = float(np.mean(oos_best < threshold)) if len(oos_best) else None
    return threshold, {"in_scope_accuracy": accepted, "oos_recall": recall}


def fit_head(
    examples: Sequence[IntentExample],
    encoder: Encoder,
    seed: int = 13,
    *,
    c: float = DEFAULT_C,
    origin: str = ORIGIN_INDEX,
) -> IntentModel:
    """Fit a head on ``encoder``'s frozen embeddings of ``examples`` and tune the OOS threshold.

    Raises :class:`DataError` when there are fewer than two in-scope intents.  The returned model's
    ``report`` holds counts, held-out accuracy, threshold, OOS recall and seconds.
    """
    started = time.perf_counter()
    texts = [clean_text(e.text) for e in examples]
    kept = [(t, e.intent.strip()) for t, e in zip(texts, examples, strict=True) if t and e.intent.strip()]
    in_scope = [(t, label) for t, label in kept if label != OOS_LABEL]
    oos_texts = [t for t, label in kept if label == OOS_LABEL]
    counts = check_trainable([IntentExample(text=t, intent=label) for t, label in kept])
    labels = sorted(counts)
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[label] for _, label in in_scope], dtype=np.int64)
    x = np.asarray(encoder.encode([t for t, _ in in_scope]), dtype=np.float32)
    xo = (
        np.asarray(encoder.encode(oos_texts), dtype=np.float32)
        if oos_texts
        else np.zeros((0, x.shape[1]), dtype=np.float32)
    )
    if not np.isfinite(x).all() or not np.isfinite(xo).all():
        raise DataError("the encoder returned non-finite embeddings; check the embedder model")
    embed_s = time.perf_counter() - started

    # Held-out predictions for the threshold: k folds (or one fold when the data is large).
    rng = np.random.default_rng(seed)
    k = 5
    folds = _assign_folds([label for _, label in in_scope], k, rng)
    oos_folds = rng.integers(0, k, size=len(xo)) if len(xo) else np.zeros(0, dtype=np.int64)
    eval_folds = [f for f in range(k) if np.any(folds == f)]
    if len(in_scope) > FULL_CV_LIMIT:
        eval_folds = eval_folds[:1]
    held_best: list[np.ndarray] = []
    held_correct: list[np.ndarray] = []
    oos_best: list[np.ndarray] = []
    for f in eval_folds:
        train, test = folds != f, folds == f
        if len(np.unique(y[train])) < 2:
            continue
        fold_model = _fit_lr(x[train], y[train], seed, c)
        p = _full_probs(fold_model, x[test], len(labels))
        held_best.append(p.max(axis=1))
        held_correct.append(p.argmax(axis=1) == y[test])
        xo_f = xo[oos_folds == f] if len(eval_folds) > 1 else xo
        if len(xo_f):
            oos_best.append(_full_probs(fold_model, xo_f, len(labels)).max(axis=1))
    best_arr = np.concatenate(held_best) if held_best else np.zeros(0)
    correct_arr = np.concatenate(held_correct) if held_correct else np.zeros(0, dtype=bool)
    oos_arr = np.concatenate(oos_best) if oos_best else np.zeros(0)
    threshold, achieved = choose_threshold(best_arr, correct_arr, oos_arr, len(labels))

    head = fit_linear_head(x, y, labels, seed, c)
    coef = head.coef
    digest = hashlib.sha256(coef.tobytes() + json.dumps(labels).encode()).hexdigest()[:10]
    model_id = f"head-{digest}"
    report: dict[str, Any] = {
        "kind": "head",
        "model_id": model_id,
        "encoder": encoder.model_id,
        "examples": len(in_scope),
        "oos_examples": len(oos_texts),
        "skipped": len(examples) - len(kept),
        "intents": len(labels),
        "min_examples_per_intent": int(min(counts.values())),
        "heldout_examples": int(len(best_arr)),
        "heldout_accuracy": float(np.mean(correct_arr)) if len(correct_arr) else None,
        "threshold": float(threshold),
        "threshold_tuned": bool(len(best_arr)),
        "in_scope_accuracy": achieved["in_scope_accuracy"],
        "oos_recall": achieved["oos_recall"],
        "embed_seconds": round(embed_s, 3),
        "train_seconds": round(time.perf_counter() - started, 3),
        "seed": seed,
        "C": c,
    }
    return IntentModel(encoder, head, float(threshold), model_id, origin=origin, report=report)


def fit_intent_head(
    examples: Sequence[IntentExample],
    encoder: Encoder,
    out_dir: Path,
    seed: int = 13,
    *,
    c: float = DEFAULT_C,
) -> dict[str, Any]:
    """Fit the index head (:func:`fit_head`) and save it atomically into ``out_dir``; return its report.

    Called by ``csassist index`` with ``out_dir = <index_dir>/intent``.
    """
    model = fit_head(examples, encoder, seed, c=c)
    save_model(model, Path(out_dir))
    return dict(model.report)

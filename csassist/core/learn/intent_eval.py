"""Evaluating an intent model on labelled data: accuracy, macro-F1, per intent, confusions, OOS, latency.

Shared by ``csassist eval intents``, ``finetune --intents`` (the promotion comparison) and
``bench/intents.py``, so a number means the same thing everywhere.  The report names the model
that answered (``model`` is its id, ``model_description`` says it in words).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from csassist.core.errors import DataError
from csassist.core.types import IntentExample
from csassist.core.understand.intent_data import OOS_LABEL


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) or None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def evaluate_intents(model: Any, examples: Sequence[IntentExample], *, latency_samples: int = 200) -> dict[str, Any]:
    """Accuracy, macro-F1, per-intent P/R/F1, worst confusions, OOS recall and latency of ``model``.

    Rows whose label the model does not know are counted as errors and listed under
    ``unknown_labels`` (never a crash).  Latency is measured on single-message ``predict`` calls.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    if not examples:
        raise DataError("no evaluation examples")
    known = set(getattr(model, "labels", []) or [])
    texts = [e.text for e in examples]
    t0 = time.perf_counter()
    preds = model.predict_batch(texts)
    batch_seconds = time.perf_counter() - t0
    gold = [e.intent for e in examples]
    in_idx = [i for i, g in enumerate(gold) if g != OOS_LABEL]
    oos_idx = [i for i, g in enumerate(gold) if g == OOS_LABEL]
    top1 = [p.top[0].intent if p.top else "" for p in preds]
    unknown = Counter(gold[i] for i in in_idx if known and gold[i] not in known)

    # Closed-set accuracy (ignoring the OOS threshold) on in-scope rows: the classifier's quality.
    acc = float(np.mean([top1[i] == gold[i] for i in in_idx])) if in_idx else None
    y_true = [gold[i] for i in in_idx]
    y_pred = [top1[i] for i in in_idx]
    names = sorted(set(y_true))
    macro = float(f1_score(y_true, y_pred, labels=names, average="macro", zero_division=0)) if in_idx else None
    per: dict[str, dict[str, float | int]] = {}
    if in_idx:
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=names, zero_division=0)
        per = {n: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k])}
               for k, n in enumerate(names)}
    confusions = Counter((gold[i], top1[i]) for i in in_idx if top1[i] != gold[i])
    worst = [{"gold": g, "predicted": pr or "(none)", "count": c} for (g, pr), c in confusions.most_common(10)]
    oos_recall = float(np.mean([preds[i].out_of_scope for i in oos_idx])) if oos_idx else None
    in_scope_acc = (
        float(np.mean([(not preds[i].out_of_scope) and top1[i] == gold[i] for i in in_idx]))
        if oos_idx and in_idx else None
    )
    # Single-message latency (what the app pays per incoming message).
    sample = [texts[i] for i in range(0, len(texts), max(1, len(texts) // latency_samples))][:latency_samples]
    if sample:
        model.predict(sample[0])  # warm-up
    lat = []
    for t in sample:
        s0 = time.perf_counter()
        model.predict(t)
        lat.append((time.perf_counter() - s0) * 1000)
    return {
        "model": getattr(model, "model_id", ""),
        "model_description": model.describe() if hasattr(model, "describe") else getattr(model, "model_id", ""),
        "examples": len(examples),
        "in_scope_examples": len(in_idx),
        "oos_examples": len(oos_idx),
        "accuracy": acc,
        "macro_f1": macro,
        "oos_recall": oos_recall,
        "in_scope_accuracy": in_scope_acc,
        "threshold": float(getattr(model, "threshold", 0.0)),
        "unknown_labels": dict(unknown),
        "latency_ms_p50": percentile(lat, 50),
        "latency_ms_p95": percentile(lat, 95),
        "batch_ms_per_message": batch_seconds * 1000 / max(1, len(texts)),
        "per_intent": per,
        "worst_confusions": worst,
    }

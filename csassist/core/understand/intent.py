"""Intent classification: a linear head on frozen sentence embeddings, with an out-of-scope threshold.

Why a head on frozen embeddings: it trains in seconds whenever the KB is indexed (the embedder is
already loaded for retrieval), costs one matrix product per message on top of the embedding, and
reaches ~93 % on BANKING77.  The accurate-but-slow path (full encoder fine-tuning) lives in
:mod:`csassist.core.learn.intent_finetune`; :func:`load_intent_model` prefers a promoted fine-tuned model.

Out of scope: an utterance is OOS when the best probability is below a threshold tuned on held-out
predictions (cross-validation folds, or one stratified hold-out fold for large data).  Rows labelled
``oos`` are not a class; they are only used to pick that threshold (balanced in-scope accuracy vs OOS
recall).  Without ``oos`` rows the threshold keeps ~95 % of correct held-out predictions in scope.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from csassist.core.atomic import atomic_directory
from csassist.core.errors import DataError, ModelMissingError
from csassist.core.knowledge.embedder import Encoder
from csassist.core.types import IntentExample, IntentPrediction, IntentScore
from csassist.core.understand.intent_data import OOS_LABEL, check_trainable

HEAD_FORMAT = 1
TOP_K = 3
#: Longest text (characters) given to the encoder: it truncates to 256 tokens anyway, and tokenising
#: 100 KB of pasted log output would cost tens of milliseconds for nothing.
MAX_CHARS = 2000
#: Inverse regularisation of the logistic regression.  Embeddings are unit vectors, so logits are
#: small; a weak penalty gives both the best BANKING77 accuracy and usable (not flat) probabilities.
DEFAULT_C = 20.0
#: Above this many in-scope examples, one hold-out fold replaces full cross-validation (time).
FULL_CV_LIMIT = 3000


@runtime_checkable
class IntentModel(Protocol):
    """Anything that classifies a customer message into intents (head or fine-tuned encoder)."""

    model_id: str

    def predict(self, text: str) -> IntentPrediction:
        """Top 3 intents (probabilities sum <= 1, never NaN) and the out-of-scope verdict."""
        ...

    def predict_batch(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """:meth:`predict` for many texts at once (faster: one encoder batch)."""
        ...


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


# --------------------------------------------------------------------------------------------- fitting


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


def fit_intent_head(
    examples: Sequence[IntentExample],
    encoder: Encoder,
    out_dir: Path,
    seed: int = 13,
    *,
    c: float = DEFAULT_C,
) -> dict[str, Any]:
    """Fit the intent head from labelled examples, tune the OOS threshold, save it atomically.

    Called by ``csassist index`` with ``out_dir = <index_dir>/intent``.  Raises :class:`DataError`
    when there are fewer than two in-scope intents.  Returns a report (counts, held-out accuracy,
    threshold, OOS recall, seconds) that is also stored in ``meta.json``.
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

    model = _fit_lr(x, y, seed, c)
    coef = np.zeros((len(labels), x.shape[1]), dtype=np.float32)
    intercept = np.zeros(len(labels), dtype=np.float32)
    if len(model.classes_) == 2 and model.coef_.shape[0] == 1:  # sklearn's binary shape
        coef[1], intercept[1] = model.coef_[0], model.intercept_[0]
    else:
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
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
    meta = {"format": HEAD_FORMAT, "labels": labels, "threshold": float(threshold), "report": report}
    with atomic_directory(Path(out_dir)) as tmp:
        np.savez(tmp / "head.npz", coef=coef, intercept=intercept)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return report


# --------------------------------------------------------------------------------------------- predicting


class HeadIntentModel:
    """The fitted head plus the encoder that produced its training embeddings."""

    def __init__(
        self, labels: Sequence[str], coef: np.ndarray, intercept: np.ndarray, threshold: float,
        encoder: Encoder, model_id: str,
    ) -> None:
        self.labels = list(labels)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.threshold = float(threshold)
        self.encoder = encoder
        self.model_id = model_id

    def predict(self, text: str) -> IntentPrediction:
        """Classify one message."""
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify many messages with one encoder call; empty ones are out of scope with no candidates."""
        cleaned = [clean_text(t) for t in texts]
        todo = [i for i, t in enumerate(cleaned) if t]
        out = [empty_prediction(self.threshold, self.model_id) for _ in cleaned]
        if todo:
            emb = np.asarray(self.encoder.encode([cleaned[i] for i in todo]), dtype=np.float32)
            probs = softmax(emb @ self.coef.T + self.intercept)
            for row, i in enumerate(todo):
                out[i] = prediction_from_probs(probs[row], self.labels, self.threshold, self.model_id)
        return out


def load_head(head_dir: Path, encoder: Encoder | None = None) -> HeadIntentModel:
    """Load a head saved by :func:`fit_intent_head`; the encoder must be the one it was fitted with."""
    meta_path = Path(head_dir) / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        arrays = np.load(Path(head_dir) / "head.npz")
        coef, intercept = arrays["coef"], arrays["intercept"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelMissingError(f"{head_dir}: intent head unreadable ({exc}); run `csassist index`") from exc
    if meta.get("format") != HEAD_FORMAT:
        raise ModelMissingError(f"{meta_path}: unknown intent head format; run `csassist index`")
    report = meta.get("report", {})
    wanted = report.get("encoder", "")
    if encoder is None:
        from csassist.core.knowledge.embedder import DEFAULT_EMBEDDER, load_encoder

        encoder = load_encoder(None if wanted in ("", DEFAULT_EMBEDDER) else wanted)
    if wanted and encoder.model_id != wanted:
        raise ModelMissingError(
            f"{head_dir}: the intent head was fitted with embedder {wanted!r}, not {encoder.model_id!r}; "
            "run `csassist index` to refit it"
        )
    if coef.shape[1] != encoder.dimension:
        raise ModelMissingError(f"{head_dir}: intent head dimension mismatch; run `csassist index`")
    threshold = float(meta.get("threshold", 0.5))
    if not math.isfinite(threshold):
        threshold = 0.5
    return HeadIntentModel(meta["labels"], coef, intercept, threshold, encoder, report.get("model_id", "head"))


def load_intent_model(index_dir: Path, encoder: Encoder | None = None) -> IntentModel:
    """The intent model the app should use.

    A promoted fully fine-tuned model (``paths.intent_models_dir()/current``) wins; otherwise the head
    fitted beside the index in ``index_dir/intent``; with neither, :class:`ModelMissingError` telling
    the user to run ``csassist index``.
    """
    from csassist.core.learn import intent_finetune

    promoted = intent_finetune.current_model_dir()
    if promoted is not None:
        return intent_finetune.load_finetuned(promoted)
    head_dir = Path(index_dir) / "intent"
    if (head_dir / "meta.json").exists():
        return load_head(head_dir, encoder)
    raise ModelMissingError(f"no intent model in {head_dir}: run `csassist index` to fit one from kb/intents.csv")


def label_counts(examples: Sequence[IntentExample]) -> Counter[str]:
    """How many examples each label has (``oos`` included), for reports."""
    return Counter(e.intent for e in examples)

"""A fine-tuned intent model's second opinion: a head on the configured embedder's frozen vectors.

Why: fine-tuning teaches the task to the encoder, and in doing so moves it away from the general
sentence space it was pre-trained in; a logistic regression on the *frozen* vectors keeps that space.
The two make different mistakes, so a linear mix of their probabilities is more accurate than either
(bench/intents.py measures the fine-tuned model alone and mixed, on BANKING77).  In the app the
frozen vector is the one the retriever computes for every message anyway, so the mix costs a matrix
product, not a second encoder pass.

The mixing weight is chosen on the validation split the fine-tuning already keeps (accuracy first,
then log-loss), from a small grid that includes 0: when the mix does not help on validation, the
model is saved without a second opinion.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from csassist.core.knowledge.embedder import Encoder
from csassist.core.learn.intent_head import fit_linear_head
from csassist.core.understand.intent import LinearHead, SecondOpinion, mix_probs

#: The second opinion's shares tried on validation (0: the fine-tuned model alone).
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class FrozenHead:
    """The fitted head and its embedder, before a weight is chosen (fitting takes the embedding time)."""

    encoder: Encoder
    head: LinearHead
    seconds: float


def fit_frozen_head(texts: Sequence[str], targets: np.ndarray, labels: Sequence[str], embedder: str | None,
                    seed: int) -> FrozenHead:
    """Embed ``texts`` with the configured ``embedder`` (frozen; None: the default) and fit a head on them.

    ``targets[i]`` indexes ``labels``.  The embedder is the app's retrieval embedder, not the base the
    fine-tuning started from: the app loads the second opinion with the embedder it is configured with.
    """
    from csassist.core.knowledge.embedder import load_encoder

    started = time.perf_counter()
    encoder = load_encoder(embedder or None)
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    head = fit_linear_head(vectors, np.asarray(targets), labels, seed)
    return FrozenHead(encoder, head, round(time.perf_counter() - started, 1))


def _log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the gold labels (the tie-breaker between equally accurate weights)."""
    picked = probs[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def choose_weight(own: np.ndarray, other: np.ndarray, y: np.ndarray) -> tuple[float, list[dict[str, Any]]]:
    """The share of ``other`` that is most accurate on validation (ties: lower log-loss, then the smaller share).

    Returns the weight and the whole table (``weight``, ``val_accuracy``, ``val_log_loss``) for the report.
    """
    table = []
    for weight in WEIGHTS:
        mixed = mix_probs(own, other, weight)
        table.append({"weight": weight, "val_accuracy": float(np.mean(mixed.argmax(1) == y)),
                      "val_log_loss": round(_log_loss(mixed, y), 4)})
    best = max(table, key=lambda row: (row["val_accuracy"], -row["val_log_loss"], -row["weight"]))
    return float(best["weight"]), table


def second_opinion_for(frozen: FrozenHead, own_val: np.ndarray, val_texts: Sequence[str],
                       val_y: np.ndarray) -> tuple[SecondOpinion | None, dict[str, Any]]:
    """Choose the weight on validation; ``None`` (and the report saying why) when the mix does not help."""
    other = frozen.head.probs(np.asarray(frozen.encoder.encode(list(val_texts)), dtype=np.float32))
    weight, table = choose_weight(own_val, other, val_y)
    report = {"encoder": frozen.encoder.model_id, "weight": weight, "fit_seconds": frozen.seconds,
              "val_accuracy_alone": table[0]["val_accuracy"],
              "val_accuracy_mixed": next(r["val_accuracy"] for r in table if r["weight"] == weight),
              "by_weight": table}
    if weight <= 0.0:
        return None, report
    return SecondOpinion(frozen.encoder, frozen.head, weight), report

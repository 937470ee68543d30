"""The learning loop's data: feedback events -> deduplicated (prompt -> sent reply) pairs -> train/validation.

Only what an agent actually *sent* is a target: accepted (as-is) and edited outcomes give a pair
``(prompt -> final sent text)``.  The prompt is the exact rendered text under which the generator
writes a whole reply at inference (the log stores it, redacted), so training matches inference: a
draft the model wrote whole carries its own prompt, and a reply assembled from KB sentences (the
extractive lead, a ``select`` draft) carries the ``rewrite`` prompt of the same turn — see
:mod:`csassist.core.reply.strategy` for why, and for how the adapter applies to ``select`` openings.  Pairs are deduplicated (same prompt: the most
recent sent text wins), split train/validation with a fixed seed, and refused with a
:class:`DataError` below ``min_pairs``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from csassist.core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.learn.feedback import FeedbackLog

#: Fewer pairs than this and training would only memorise noise: refuse.
DEFAULT_MIN_PAIRS = 20


@dataclass(frozen=True)
class Pair:
    """One supervised example: the exact prompt the generator saw and the reply the agent sent."""

    prompt: str
    target: str
    outcome: str
    intent: str | None = None
    ts: float = 0.0


@dataclass(frozen=True)
class Dataset:
    """Train/validation pairs plus a summary that is printed by ``--dry-run`` and saved with the adapter."""

    train: tuple[Pair, ...]
    val: tuple[Pair, ...]
    summary: dict[str, Any] = field(default_factory=dict)


def norm(text: str) -> str:
    """Whitespace-normalised text for deduplication."""
    return " ".join(text.split())


def pairs_from_events(events: Iterable[dict[str, Any]]) -> tuple[list[Pair], dict[str, Any]]:
    """Turn stored feedback events into deduplicated pairs; also return counts for the summary.

    Accepted and edited outcomes with a non-empty prompt and sent text qualify.  Duplicates (same
    normalised prompt) keep the most recent sent text: that is the agent's latest word on it.
    """
    by_outcome: Counter[str] = Counter()
    candidates: list[Pair] = []
    skipped_empty = 0
    for event in events:
        outcome = str(event.get("outcome"))
        by_outcome[outcome] += 1
        if outcome not in ("accepted", "edited"):
            continue
        prompt, target = event.get("prompt") or "", event.get("final_text") or ""
        if not prompt.strip() or not target.strip():
            skipped_empty += 1
            continue
        intent = event.get("intent_correction") or event.get("intent")
        candidates.append(Pair(prompt, target.strip(), outcome, intent, float(event.get("ts") or 0.0)))
    latest: dict[str, Pair] = {}
    for pair in sorted(candidates, key=lambda p: p.ts):
        latest[norm(pair.prompt)] = pair
    pairs = sorted(latest.values(), key=lambda p: p.ts)
    counts = {
        "events": sum(by_outcome.values()),
        "events_by_outcome": {o: by_outcome.get(o, 0) for o in ("accepted", "edited", "rejected", "ignored")},
        "candidate_pairs": len(candidates),
        "skipped_empty": skipped_empty,
        "duplicates_dropped": len(candidates) - len(pairs),
        "pairs": len(pairs),
    }
    return pairs, counts


def split_pairs(pairs: Sequence[Pair], val_split: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Seeded shuffle, then the last ``val_split`` share (at least one pair) goes to validation."""
    if not 0.0 < val_split < 1.0:
        raise DataError(f"--val-split must be between 0 and 1 (got {val_split})")
    order = list(pairs)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_split))
    return order[:-n_val], order[-n_val:]


def _example(pair: Pair, limit: int = 160) -> dict[str, str]:
    """A short, already-redacted example for the summary (the end of the prompt holds the question)."""
    prompt = norm(pair.prompt)
    target = norm(pair.target)
    return {
        "outcome": pair.outcome,
        "intent": pair.intent or "",
        "prompt_end": ("..." + prompt[-limit:]) if len(prompt) > limit else prompt,
        "reply": (target[:limit] + "...") if len(target) > limit else target,
    }


def build_dataset(
    log: FeedbackLog,
    val_split: float = 0.1,
    seed: int = 13,
    min_pairs: int = DEFAULT_MIN_PAIRS,
    examples: int = 3,
    enforce_min: bool = True,
) -> Dataset:
    """Read the log and build the train/validation split, refusing when there is too little data.

    ``enforce_min=False`` (the dry run) never refuses: it reports ``enough_data`` in the summary so an
    agent who has accepted a dozen suggestions sees them counted before training is possible.
    """
    pairs, counts = pairs_from_events(log.events())
    if len(pairs) < min_pairs and enforce_min:
        raise DataError(
            f"{log.path}: only {len(pairs)} usable pair(s) (accepted or edited suggestions with their sent text; "
            f"{counts['events']} events logged); at least {min_pairs} are needed to fine-tune. "
            "Accept or edit more suggestions in the app, then run this again."
        )
    train, val = split_pairs(pairs, val_split, seed) if len(pairs) >= 2 else (list(pairs), [])
    intents = Counter(p.intent or "(none)" for p in pairs)
    summary = {
        **counts,
        "log": str(log.path),
        "train": len(train),
        "val": len(val),
        "val_split": val_split,
        "seed": seed,
        "min_pairs": min_pairs,
        "enough_data": len(pairs) >= min_pairs,
        "pairs_by_outcome": dict(Counter(p.outcome for p in pairs)),
        "pairs_by_intent": dict(intents.most_common()),
        "examples": [_example(p) for p in pairs[-examples:]] if examples else [],
    }
    return Dataset(tuple(train), tuple(val), summary)

"""Scoring the engine on a labelled dev set: retrieval (hit@k, MRR) and intents (closed set, OOS), by kind.

A dev set row is a customer message with its gold ``intent`` (``oos`` = off topic), the KB
``articles`` that answer it and a ``kind`` (plain, indirect, typo, long, angry, non-native, multi,
oos).  Figures are reported overall and per kind, because an average hides exactly what breaks on
real wording: typos and long messages fail differently from plain questions.

The metric names say which question they answer:

* ``closed_set_accuracy``: top-1 intent right, ignoring the out-of-scope verdict (the classifier);
* ``top3_accuracy``: the gold intent among the three shown;
* ``in_scope_accuracy_after_oos``: right *and* not flagged out of scope (what the agent sees);
* ``in_scope_flagged_oos``: real questions wrongly flagged out of scope;
* ``oos_precision`` / ``oos_recall``: of the flagged rows / of the off-topic rows;
* ``oos_recall_at_in_scope_accuracy``: best OOS recall reachable by moving the detector's threshold
  while ``in_scope_accuracy_after_oos`` stays at or above 0.90 / 0.95 (``None`` when unreachable);
* ``oos_recall_at_in_scope_kept``: the same while at least 90 % / 95 % of real questions stay in scope.

Nothing here loads a model: callers pass predictions, so tests run on fixtures and the CLI and the
benchmark share the arithmetic.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.errors import DataError
from csassist.core.types import IntentPrediction
from csassist.core.understand.intent_data import LABEL_COLUMNS, OOS_LABEL, TEXT_COLUMNS, jsonl_objects

#: Where the project keeps its held-out dev set; every training path must skip it.
DEV_SET_DIR = "eval"
LEVELS = (0.90, 0.95)
HIT_KS = (1, 3, 5)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EvalQuery:
    """One dev-set row."""

    id: str
    text: str
    intent: str
    articles: tuple[str, ...] = ()
    kind: str = "all"

    @property
    def is_oos(self) -> bool:
        """Whether the message is off topic for the shop."""
        return self.intent == OOS_LABEL


def _split_articles(value: Any) -> tuple[str, ...]:
    """``articles`` as a JSON list or a ``|``/``;``/space separated cell."""
    if isinstance(value, list):
        items = [str(v) for v in value]
    else:
        items = str(value or "").replace(";", "|").replace(",", "|").replace(" ", "|").split("|")
    return tuple(i.strip() for i in items if i.strip())


def _row_to_query(row: dict[str, Any], number: int, where: str, problems: list[str]) -> EvalQuery | None:
    """Validate one row (keys lower-cased) into an :class:`EvalQuery`, or note why it is skipped."""
    text_key = next((k for k in TEXT_COLUMNS if k in row), None)
    label_key = next((k for k in LABEL_COLUMNS if k in row), None)
    text = str(row.get(text_key, "") if text_key else "").strip()
    intent = str(row.get(label_key, "") if label_key else "").strip()
    if not text or not intent:
        problems.append(f"{where}: needs a text and an intent (skipped)")
        return None
    return EvalQuery(
        id=str(row.get("id") or f"row{number}"),
        text=text,
        intent=intent,
        articles=_split_articles(row.get("articles", row.get("article", ""))),
        kind=str(row.get("kind") or "all").strip() or "all",
    )


def load_eval_queries(path: Path) -> tuple[list[EvalQuery], list[str]]:
    """Read a dev set (``.jsonl`` or ``.csv``); return ``(queries, problems)``; no usable row -> DataError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a .csv or .jsonl file")
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    problems: list[str] = []
    queries: list[EvalQuery] = []
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for line_no, obj in jsonl_objects(path, raw, problems):
            row = {str(k).strip().lower(): v for k, v in obj.items()}
            query = _row_to_query(row, line_no, f"{path}:{line_no}", problems)
            if query is not None:
                queries.append(query)
    else:
        reader = csv.DictReader(io.StringIO(raw))
        for number, record in enumerate(reader, start=2):
            row = {str(k).strip().lower(): v for k, v in record.items() if k is not None}
            query = _row_to_query(row, number, f"{path}:{number}", problems)
            if query is not None:
                queries.append(query)
    if not queries:
        detail = f" ({problems[0]})" if problems else ""
        raise DataError(f"{path}: no usable rows{detail}")
    return queries, problems


def _mean(values: Sequence[bool | float]) -> float | None:
    """Mean of ``values`` as a float, or ``None`` for an empty list."""
    return float(np.mean(values)) if len(values) else None


def _by_kind(queries: Sequence[EvalQuery]) -> dict[str, list[int]]:
    """Row positions per kind, kinds sorted by name."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(q.kind, []).append(i)
    return dict(sorted(groups.items()))


# ------------------------------------------------------------------------------------------- retrieval


def retrieval_metrics(queries: Sequence[EvalQuery], ranked: Sequence[Sequence[str]]) -> dict[str, Any]:
    """hit@1/3/5 and MRR over the rows that name articles, overall and by kind.

    ``ranked[i]`` is the article ids returned for ``queries[i]`` (best first; repeats are ignored).
    A hit is any of the row's expected articles; MRR uses the first one found.
    """
    if len(ranked) != len(queries):
        raise ValueError("one ranking per query is needed")
    ranks: list[int | None] = []
    for query, ids in zip(queries, ranked, strict=True):
        seen: list[str] = []
        for article in ids:
            if article not in seen:
                seen.append(article)
        rank = next((r for r, a in enumerate(seen, start=1) if a in query.articles), None)
        ranks.append(rank)

    def summary(rows: Sequence[int]) -> dict[str, Any]:
        rows = [i for i in rows if queries[i].articles]
        out: dict[str, Any] = {"n": len(rows)}
        for k in HIT_KS:
            out[f"hit@{k}"] = _mean([ranks[i] is not None and ranks[i] <= k for i in rows])  # type: ignore[operator]
        out["mrr"] = _mean([1.0 / ranks[i] if ranks[i] else 0.0 for i in rows])  # type: ignore[operator]
        return out

    overall = summary(range(len(queries)))
    kinds = {kind: summary(rows) for kind, rows in _by_kind(queries).items()}
    return {"overall": overall, "by_kind": {k: v for k, v in kinds.items() if v["n"]}}


# --------------------------------------------------------------------------------------------- intents


def oos_score_of(prediction: IntentPrediction) -> float:
    """How out-of-scope a prediction looks: the detector's probability, else 1 - top probability."""
    if prediction.oos_score is not None:
        return float(prediction.oos_score)
    return 1.0 - prediction.confidence


def _recall_at(correct: np.ndarray, in_scores: np.ndarray, oos_scores: np.ndarray, level: float, *,
               kept: bool) -> float | None:
    """Best OOS recall over thresholds t (flag when score >= t) keeping the in-scope figure >= ``level``.

    ``kept=False`` constrains in-scope accuracy after the verdict, ``kept=True`` the share of
    in-scope rows not flagged.
    """
    if not len(in_scores) or not len(oos_scores):
        return None
    best: float | None = None
    for t in np.unique(np.concatenate([in_scores, oos_scores, [np.inf]])):
        accepted = in_scores < t
        figure = float(np.mean(accepted)) if kept else float(np.mean(accepted & correct))
        if figure + 1e-12 >= level:
            recall = float(np.mean(oos_scores >= t))
            best = recall if best is None else max(best, recall)
    return best


def intent_metrics(queries: Sequence[EvalQuery], predictions: Sequence[IntentPrediction]) -> dict[str, Any]:
    """Closed-set, top-3, after-OOS accuracy and OOS precision/recall, overall and by kind (see module doc)."""
    if len(predictions) != len(queries):
        raise ValueError("one prediction per query is needed")
    top1 = [p.top[0].intent if p.top else "" for p in predictions]
    top3 = [{s.intent for s in p.top[:3]} for p in predictions]
    flagged = np.array([p.out_of_scope for p in predictions], dtype=bool)
    scores = np.array([oos_score_of(p) for p in predictions], dtype=np.float64)
    gold_oos = np.array([q.is_oos for q in queries], dtype=bool)
    correct = np.array([top1[i] == q.intent for i, q in enumerate(queries)], dtype=bool)

    def summary(rows: Sequence[int], *, curves: bool) -> dict[str, Any]:
        rows = list(rows)
        ins = [i for i in rows if not gold_oos[i]]
        oos = [i for i in rows if gold_oos[i]]
        flagged_rows = [i for i in rows if flagged[i]]
        out: dict[str, Any] = {
            "n": len(rows),
            "in_scope": len(ins),
            "oos": len(oos),
            "closed_set_accuracy": _mean([bool(correct[i]) for i in ins]),
            "top3_accuracy": _mean([queries[i].intent in top3[i] for i in ins]),
            "in_scope_accuracy_after_oos": _mean([bool(correct[i] and not flagged[i]) for i in ins]),
            "in_scope_flagged_oos": _mean([bool(flagged[i]) for i in ins]),
            "oos_recall": _mean([bool(flagged[i]) for i in oos]),
            "oos_precision": _mean([bool(gold_oos[i]) for i in flagged_rows]) if oos else None,
        }
        if curves:
            c, si, so = correct[ins], scores[ins], scores[oos]
            out["oos_recall_at_in_scope_accuracy"] = {
                f"{level:.2f}": _recall_at(c, si, so, level, kept=False) for level in LEVELS
            }
            out["oos_recall_at_in_scope_kept"] = {
                f"{level:.2f}": _recall_at(c, si, so, level, kept=True) for level in LEVELS
            }
        return out

    return {
        "overall": summary(range(len(queries)), curves=True),
        "by_kind": {kind: summary(rows, curves=False) for kind, rows in _by_kind(queries).items()},
    }


def in_batches(
    items: Sequence[str], run: Callable[[list[str]], list[Any]], *, batch: int = 32, progress: Progress | None = None
) -> list[Any]:
    """``run`` over ``items`` in batches (one model call each), reporting ``progress(done, total)``."""
    out: list[Any] = []
    total = len(items)
    if progress is not None:
        progress(0, total)
    for start in range(0, total, batch):
        out.extend(run(list(items[start : start + batch])))
        if progress is not None:
            progress(min(start + batch, total), total)
    return out

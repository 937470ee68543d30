"""How well are the suggestions doing?  Aggregates over the feedback log.

One pure function, :func:`compute_stats`, returns a typed :class:`StatsReport` so that ``csassist
stats`` (rich tables), ``csassist stats --json`` (:meth:`StatsReport.to_dict`) and the TUI's stats
screen (sparklines) all show the same numbers, and a renamed field is a type error, not a silent
``KeyError`` in one of the three.

Definitions (so the numbers mean one thing everywhere):

* ``rates[outcome]`` — share of *all shown* suggestions with that outcome (they sum to 1).
* ``acceptance_rate`` — (accepted as-is + accepted with edits) / shown.
* ``edit_distance`` — word-level Levenshtein distance between suggestion and sent text, over accepted
  and edited events (accepted as-is counts as 0); ``edit_ratio`` is that distance divided by the longer
  text's token count.
* latency percentiles use linear interpolation between closest ranks (numpy's default).
* days are UTC calendar days; the series covers every day from the first to the last event, with
  zeros for quiet days, so a sparkline's x axis is time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from csassist.core.learn.feedback import OUTCOMES

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.learn.feedback import FeedbackLog


@dataclass(frozen=True)
class Percentiles:
    """p50 / p95 of some latencies and how many there were (``None`` without any)."""

    p50: float | None = None
    p95: float | None = None
    count: int = 0


@dataclass(frozen=True)
class GroupStats:
    """Outcomes, edit distance and latency of one group of shown suggestions (see the module docstring)."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    rates: dict[str, float] = field(default_factory=lambda: {o: 0.0 for o in OUTCOMES})
    acceptance_rate: float = 0.0
    mean_edit_distance: float | None = None
    mean_edit_ratio: float | None = None
    latency_ms: Percentiles = field(default_factory=Percentiles)
    first_token_ms: Percentiles = field(default_factory=Percentiles)
    #: Customer message -> agent reply, once per replied turn (seconds).
    time_to_reply_s: Percentiles = field(default_factory=Percentiles)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``csassist stats --json``."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DayStats:
    """One UTC day of the series (quiet days have ``total == 0``)."""

    day: str
    total: int
    counts: dict[str, int]
    acceptance_rate: float
    mean_edit_distance: float | None
    latency_p50_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON row: the outcome counts flattened next to the other fields."""
        return {
            "day": self.day,
            "total": self.total,
            **self.counts,
            "acceptance_rate": self.acceptance_rate,
            "mean_edit_distance": self.mean_edit_distance,
            "latency_p50_ms": self.latency_p50_ms,
        }


@dataclass(frozen=True)
class StatsReport(GroupStats):
    """All suggestions, then the same numbers by intent and by ``backend:model``, plus a daily series."""

    intent_corrections: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    by_intent: dict[str, GroupStats] = field(default_factory=dict)
    by_model: dict[str, GroupStats] = field(default_factory=dict)
    #: Team statistics: per agent (``agent_id``) and per set of model versions that drafted.
    by_agent: dict[str, GroupStats] = field(default_factory=dict)
    by_model_versions: dict[str, GroupStats] = field(default_factory=dict)
    daily: list[DayStats] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``csassist stats --json`` (the shape it always had)."""
        overall = GroupStats.to_dict(self)
        for key in ("intent_corrections", "reject_reasons", "by_intent", "by_model", "by_agent", "by_model_versions",
                    "daily", "first_ts", "last_ts"):
            overall.pop(key, None)
        return {
            **overall,
            "intent_corrections": self.intent_corrections,
            "reject_reasons": dict(self.reject_reasons),
            "by_intent": {k: g.to_dict() for k, g in self.by_intent.items()},
            "by_model": {k: g.to_dict() for k, g in self.by_model.items()},
            "by_agent": {k: g.to_dict() for k, g in self.by_agent.items()},
            "by_model_versions": {k: g.to_dict() for k, g in self.by_model_versions.items()},
            "daily": [d.to_dict() for d in self.daily],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, ``None`` when empty."""
    return sum(values) / len(values) if values else None


def _group_summary(events: Sequence[dict[str, Any]]) -> GroupStats:
    """Counts, rates, edit distance and latency for one group of events."""
    counts = Counter(e["outcome"] for e in events)
    total = len(events)
    distances = [float(e["edit_distance"]) for e in events if e.get("edit_distance") is not None]
    ratios = [float(e["edit_ratio"]) for e in events if e.get("edit_ratio") is not None]
    latencies = [float(e["latency_ms"]) for e in events if e.get("latency_ms") is not None]
    first = [float(e["first_token_ms"]) for e in events if e.get("first_token_ms") is not None]
    replies: dict[tuple[Any, Any, Any], float] = {}  # one reply per (agent, conversation, turn)
    for e in events:
        if e.get("reply_s") is not None:
            replies[(e.get("agent_id"), e.get("conversation_id"), e.get("turn"))] = float(e["reply_s"])
    reply_times = list(replies.values())
    return GroupStats(
        total=total,
        counts={o: counts.get(o, 0) for o in OUTCOMES},
        rates={o: (counts.get(o, 0) / total if total else 0.0) for o in OUTCOMES},
        acceptance_rate=((counts.get("accepted", 0) + counts.get("edited", 0)) / total) if total else 0.0,
        mean_edit_distance=_mean(distances),
        mean_edit_ratio=_mean(ratios),
        latency_ms=Percentiles(percentile(latencies, 50), percentile(latencies, 95), len(latencies)),
        first_token_ms=Percentiles(percentile(first, 50), percentile(first, 95), len(first)),
        time_to_reply_s=Percentiles(percentile(reply_times, 50), percentile(reply_times, 95), len(reply_times)),
    )


def _day(ts: float) -> dt.date:
    """UTC calendar day of a timestamp."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).date()


def _daily(events: Sequence[dict[str, Any]]) -> list[DayStats]:
    """One row per UTC day from the first to the last event (quiet days filled with zeros)."""
    if not events:
        return []
    by_day: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_day[_day(float(event["ts"]))].append(event)
    first, last = min(by_day), max(by_day)
    series = []
    day = first
    while day <= last:
        summary = _group_summary(by_day.get(day, []))
        series.append(
            DayStats(
                day=day.isoformat(),
                total=summary.total,
                counts=summary.counts,
                acceptance_rate=summary.acceptance_rate,
                mean_edit_distance=summary.mean_edit_distance,
                latency_p50_ms=summary.latency_ms.p50,
            )
        )
        day += dt.timedelta(days=1)
    return series


def model_versions_key(event: dict[str, Any]) -> str:
    """One label for the models that drafted an event: ``generator=...; intent_model=...`` (sorted)."""
    versions = event.get("model_versions") or {}
    if not isinstance(versions, dict) or not versions:
        return f"{event.get('backend') or '?'}:{event.get('model') or '-'}"
    return "; ".join(f"{k}={v}" for k, v in sorted(versions.items()) if k in ("generator", "intent_model", "embedder"))


def summarize_events(events: Iterable[dict[str, Any]]) -> StatsReport:
    """:func:`compute_stats` on an iterable of stored event dicts (as :meth:`FeedbackLog.events` yields)."""
    rows = list(events)
    overall = _group_summary(rows)
    by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    reasons: Counter[str] = Counter()
    corrections = 0
    for event in rows:
        intent = event.get("intent_correction") or event.get("intent") or "(none)"
        by_intent[intent].append(event)
        model = event.get("model") or "-"
        by_model[f"{event.get('backend') or '?'}:{model}"].append(event)
        by_agent[event.get("agent_id") or "(unknown)"].append(event)
        by_versions[model_versions_key(event)].append(event)
        if event.get("outcome") == "rejected":
            reasons[event.get("reject_reason") or "(no reason)"] += 1
        if event.get("intent_correction"):
            corrections += 1
    return StatsReport(
        **{f.name: getattr(overall, f.name) for f in dataclasses.fields(GroupStats)},
        intent_corrections=corrections,
        reject_reasons=dict(reasons.most_common()),
        by_intent={k: _group_summary(v) for k, v in sorted(by_intent.items())},
        by_model={k: _group_summary(v) for k, v in sorted(by_model.items())},
        by_agent={k: _group_summary(v) for k, v in sorted(by_agent.items())},
        by_model_versions={k: _group_summary(v) for k, v in sorted(by_versions.items())},
        daily=_daily(rows),
        first_ts=min((float(e["ts"]) for e in rows), default=None),
        last_ts=max((float(e["ts"]) for e in rows), default=None),
    )


def compute_stats(log: FeedbackLog, since: float | None = None, agent_id: str | None = None) -> StatsReport:
    """Aggregate the feedback log (optionally only events at or after ``since``) into a :class:`StatsReport`.

    ``to_dict()`` gives the JSON object: ``total``, ``counts``/``rates`` per outcome, ``acceptance_rate``,
    ``mean_edit_distance``, ``mean_edit_ratio``, ``latency_ms``/``first_token_ms`` (p50, p95, count),
    ``reject_reasons``, ``intent_corrections``, ``by_intent`` and ``by_model`` (``backend:model`` → the
    same summary), ``by_agent`` and ``by_model_versions`` (team statistics), ``time_to_reply_s``,
    ``daily`` (per-day rows for sparklines), ``first_ts``/``last_ts``.  ``agent_id`` keeps one agent's events.
    """
    return summarize_events(log.events(since=since, agent_id=agent_id))

"""Statistics over a hand-built feedback log: every number checked by hand."""

from __future__ import annotations

import pytest

from csassist.core.learn.feedback import FeedbackLog
from csassist.core.learn.stats import compute_stats, percentile
from tests.core.test_feedback import make_event

DAY = 86400.0
T0 = 1_764_288_000.0  # 2025-11-28 00:00 UTC


def build_log() -> FeedbackLog:
    """Six events over three days (the middle one quiet), two models, two intents."""
    log = FeedbackLog()
    suggestion = "one two three four"
    rows = [
        # outcome, final, intent, correction, model, latency, ts
        ("accepted", None, "refund", None, "base", 100.0, T0 + 10),
        ("edited", "one two three five", "refund", None, "base", 200.0, T0 + 20),  # distance 1
        ("edited", "one two", "refund", "cancel", "v0001", 300.0, T0 + 30),  # distance 2
        ("rejected", None, "shipping", None, "v0001", 400.0, T0 + 2 * DAY),
        ("ignored", None, "shipping", None, "v0001", None, T0 + 2 * DAY + 5),
        ("accepted", None, None, None, "v0001", 1000.0, T0 + 2 * DAY + 9),
    ]
    for outcome, final, intent, correction, model, latency, ts in rows:
        log.record(
            make_event(
                outcome=outcome,
                final_text=final,
                suggestion_text=suggestion,
                intent=intent,
                intent_correction=correction,
                model=model,
                latency_ms=latency,
                ts=ts,
                reject_reason="wrong facts" if outcome == "rejected" else None,
            )
        )
    return log


def test_overall_numbers() -> None:
    stats = compute_stats(build_log())
    assert stats.total == 6
    assert stats.counts == {"accepted": 2, "edited": 2, "rejected": 1, "ignored": 1}
    assert stats.rates["accepted"] == pytest.approx(2 / 6)
    assert sum(stats.rates.values()) == pytest.approx(1.0)
    assert stats.acceptance_rate == pytest.approx(4 / 6)
    assert stats.mean_edit_distance == pytest.approx((0 + 1 + 2 + 0) / 4)
    assert stats.mean_edit_ratio == pytest.approx((0 + 1 / 4 + 2 / 4 + 0) / 4)
    # latencies 100, 200, 300, 400, 1000 -> p50 300, p95 = 400 + 0.8 * 600
    assert (stats.latency_ms.p50, stats.latency_ms.p95, stats.latency_ms.count) == (300.0, pytest.approx(880.0), 5)
    assert stats.reject_reasons == {"wrong facts": 1}
    assert stats.intent_corrections == 1


def test_groups_use_the_corrected_intent_and_model_version() -> None:
    stats = compute_stats(build_log())
    assert set(stats.by_intent) == {"refund", "cancel", "shipping", "(none)"}
    assert stats.by_intent["refund"].total == 2  # the corrected one moved to "cancel"
    assert stats.by_intent["cancel"].mean_edit_distance == 2
    assert stats.by_intent["shipping"].acceptance_rate == 0.0
    assert stats.by_model["local:base"].acceptance_rate == 1.0
    assert stats.by_model["local:v0001"].counts == {"accepted": 1, "edited": 1, "rejected": 1, "ignored": 1}


def test_daily_series_fills_quiet_days() -> None:
    daily = compute_stats(build_log()).daily
    assert [d.day for d in daily] == ["2025-11-28", "2025-11-29", "2025-11-30"]
    assert [d.total for d in daily] == [3, 0, 3]
    assert daily[0].acceptance_rate == 1.0 and daily[2].acceptance_rate == pytest.approx(1 / 3)
    assert daily[1].latency_p50_ms is None


def test_since_filter_and_empty_log() -> None:
    log = build_log()
    assert compute_stats(log, since=T0 + DAY).total == 3
    empty = compute_stats(FeedbackLog(log.path.with_name("empty.sqlite3")))
    assert empty.total == 0 and empty.daily == [] and empty.latency_ms.p50 is None


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_json_shape_is_stable() -> None:
    """``csassist stats --json`` keeps its keys: daily rows carry the outcome counts flattened."""
    data = compute_stats(build_log()).to_dict()
    assert data["total"] == 6 and data["latency_ms"]["count"] == 5
    assert data["by_intent"]["refund"]["counts"]["accepted"] >= 0
    assert set(data["daily"][0]) == {"day", "total", "accepted", "edited", "rejected", "ignored", "acceptance_rate",
                                     "mean_edit_distance", "latency_p50_ms"}
    assert set(data) >= {"intent_corrections", "reject_reasons", "by_model", "first_ts", "last_ts", "first_token_ms"}

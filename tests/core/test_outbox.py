"""The outbox: fsync'd lines survive SIGKILL, torn lines are tolerated, forwarding never blocks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from csassist import paths
from csassist.core.errors import CsassistError
from csassist.core.io.outbox import Outbox, read_outbox

REPO_ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A local HTTP endpoint that records POSTed JSON; status and delay are adjustable."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def dead_url() -> str:
    """A localhost URL where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_send_appends_one_json_line_with_meta(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.jsonl")
    before = time.time()
    record = box.send("c-1", "Hello Ana, your parcel left today.", meta={"backend": "local", "outcome": "edited"})
    assert list(record)[:4] == ["conversation_id", "text", "ts", "id"]
    assert record["ts"] >= before and len(record["id"]) == 32 and record["backend"] == "local"
    box.send("c-2", "Grüße — ✓")
    lines = (tmp_path / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and "Grüße — ✓" in lines[1]  # human-readable, not \\u-escaped
    assert read_outbox(tmp_path / "outbox.jsonl") == [record, json.loads(lines[1])]
    assert box.sent == 2
    assert (tmp_path / "outbox.jsonl").stat().st_mode & 0o777 == 0o600


def test_default_location_follows_csassist_home(csassist_home: Path) -> None:
    Outbox().send("c", "hi")
    assert paths.outbox_file().is_relative_to(csassist_home)
    assert [r["text"] for r in read_outbox()] == ["hi"]


@pytest.mark.parametrize(
    ("cid", "text", "meta", "why"),
    [
        ("", "x", None, "conversation_id"),
        ("c", "  ", None, "empty reply"),
        ("c", "x", {"id": "mine"}, "may not override"),
        ("c", "x", {"obj": object()}, "JSON-serialisable"),
        ("c", "x", {"score": float("nan")}, "JSON-serialisable"),
    ],
)
def test_bad_sends_write_nothing(tmp_path: Path, cid: str, text: str, meta: dict[str, Any] | None, why: str) -> None:
    box = Outbox(tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match=why):
        box.send(cid, text, meta=meta)
    assert read_outbox(tmp_path / "o.jsonl") == []


def test_unwritable_outbox_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(CsassistError, match="cannot write the outbox"):
        Outbox(tmp_path / "blocker" / "outbox.jsonl").send("c", "x")


def test_lone_surrogate_still_sends(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.jsonl")
    box.send("c", "pasted \ud800 junk")
    assert read_outbox(tmp_path / "o.jsonl")[0]["text"] == "pasted \ud800 junk"


def test_torn_last_line_is_ignored_and_next_send_stays_intact(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    good = json.dumps({"conversation_id": "c", "text": "ok", "ts": 1, "id": "a"})
    path.write_text(good + "\n" + '{"conversation_id": "c", "te')
    problems: list[str] = []
    assert [r["text"] for r in read_outbox(path, problems.append)] == ["ok"]
    assert problems == [f"{path}:2: torn last line (write was interrupted), ignored"]
    Outbox(path).send("c", "after crash")
    problems.clear()
    assert [r["text"] for r in read_outbox(path, problems.append)] == ["ok", "after crash"]
    assert problems == [f"{path}:2: unreadable line (JSONDecodeError), skipped"]


def test_read_missing_outbox_is_empty(tmp_path: Path) -> None:
    assert read_outbox(tmp_path / "none.jsonl") == []


def test_concurrent_sends_never_interleave(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.jsonl")
    threads = [
        threading.Thread(target=lambda t=t: [box.send(f"c{t}", f"reply {t}-{i} " + "x" * 3000) for i in range(10)])
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    records = read_outbox(tmp_path / "o.jsonl")
    assert len(records) == 80 and len({r["id"] for r in records}) == 80


def test_sent_line_survives_sigkill_right_after_send(tmp_path: Path) -> None:
    """The child sends, says so, and is SIGKILLed at once: the line must already be on disk."""
    path = tmp_path / "o.jsonl"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from csassist.core.io.outbox import Outbox\n"
        f"box = Outbox(Path({str(path)!r}), forward_url='http://127.0.0.1:9/never')\n"
        "for i in range(3):\n"
        "    box.send('c-kill', f'reply {i}', meta={'n': i})\n"
        "print('sent', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=dict(os.environ)
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "sent"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert [(r["text"], r["n"]) for r in read_outbox(path)] == [("reply 0", 0), ("reply 1", 1), ("reply 2", 2)]


def test_forwarding_posts_the_same_json(tmp_path: Path, receiver: Receiver) -> None:
    box = Outbox(tmp_path / "o.jsonl", forward_url=receiver.url, forward_headers={"Authorization": "Bearer s3cret"})
    sent = [box.send("c", f"r{i}", meta={"i": i}) for i in range(5)]
    assert box.wait_forwarded(10)
    assert receiver.bodies == sent  # same records, same order
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert receiver.headers[0]["Authorization"] == "Bearer s3cret"
    assert box.forwarded == 5 and box.forward_failures == 0
    assert not box.failed_path.exists()
    box.close()


def test_dead_url_records_failure_without_blocking(tmp_path: Path) -> None:
    problems: list[str] = []
    box = Outbox(tmp_path / "o.jsonl", forward_url=dead_url(), on_problem=problems.append)
    start = time.monotonic()
    record = box.send("c", "hello")
    assert time.monotonic() - start < 0.5
    assert box.wait_forwarded(10)
    failed = read_outbox(tmp_path / "o.failed.jsonl")
    assert len(failed) == 1 and failed[0]["record"] == record and failed[0]["error"]
    assert box.forward_failures == 1 and problems and "failed" in problems[0]
    assert read_outbox(tmp_path / "o.jsonl") == [record]  # the outbox itself has it regardless


def test_slow_receiver_never_blocks_send_and_close_records_leftovers(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay = 1.0
    box = Outbox(tmp_path / "o.jsonl", forward_url=receiver.url, forward_timeout=0.3)
    start = time.monotonic()
    records = [box.send("c", f"r{i}") for i in range(3)]
    assert time.monotonic() - start < 0.5
    box.close(timeout=0.1)
    assert box.wait_forwarded(1)
    failed = read_outbox(box.failed_path)
    assert {f["record"]["id"] for f in failed} == {r["id"] for r in records}
    with pytest.raises(CsassistError, match="closed"):
        box.send("c", "too late")


def test_http_error_status_is_a_failure_and_retry_delivers(tmp_path: Path, receiver: Receiver) -> None:
    receiver.status = 500
    box = Outbox(tmp_path / "o.jsonl", forward_url=receiver.url)
    record = box.send("c", "first try fails")
    assert box.wait_forwarded(10)
    failed = read_outbox(box.failed_path)
    assert failed[0]["error"].startswith("HTTP 500")
    assert box.retry_failed() == (0, 1)  # still failing: kept
    receiver.status = 202
    assert box.retry_failed() == (1, 0)
    assert read_outbox(box.failed_path) == []
    assert receiver.bodies[-1] == record


def test_redirect_is_not_followed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.status = 307
    box = Outbox(tmp_path / "o.jsonl", forward_url=receiver.url)
    box.send("c", "x")
    assert box.wait_forwarded(10)
    assert read_outbox(box.failed_path)[0]["error"].startswith("HTTP 307")


@pytest.mark.parametrize("url", ["ftp://x/y", "file:///etc/passwd", "localhost:8080", "http://"])
def test_invalid_forward_url_is_rejected(tmp_path: Path, url: str) -> None:
    with pytest.raises(CsassistError, match="outbox_url"):
        Outbox(tmp_path / "o.jsonl", forward_url=url)


def test_retry_without_url_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CsassistError, match="outbox_url"):
        Outbox(tmp_path / "o.jsonl").retry_failed()


def test_two_processes_appending_never_tear_lines(tmp_path: Path) -> None:
    """Two app instances sharing one outbox (flock + O_APPEND): every line intact, none lost."""
    path = tmp_path / "shared.jsonl"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from csassist.core.io.outbox import Outbox\n"
        f"box = Outbox(Path({str(path)!r}))\n"
        "for i in range(60):\n"
        "    box.send('c', sys.argv[1] + str(i) + ' ' + 'y' * 5000)\n"
    )
    children = [subprocess.Popen([sys.executable, "-c", code, tag], cwd=REPO_ROOT) for tag in ("a", "b")]
    for child in children:
        assert child.wait(60) == 0
    problems: list[str] = []
    records = read_outbox(path, problems.append)
    assert problems == [] and len(records) == 120
    assert {r["text"].split()[0] for r in records} == {f"{t}{i}" for t in "ab" for i in range(60)}

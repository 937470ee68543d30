"""Issue 10.1, 10.3, 10.13, 10.15 at the intake: every feed normalises text, validates ``ts``, caps lines
and answers (or reports) numbers Python cannot read - one bad message never stops the next one."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from csassist.core.io.conversation_files import read_conversations
from csassist.core.io.limits import MAX_MESSAGE_BYTES
from csassist.core.io.listen import DEFAULT_MAX_BODY_BYTES, ListenServer
from csassist.core.io.message_format import parse_timestamp
from csassist.core.io.sources import DEFAULT_MAX_LINE_BYTES, JsonlFileSource, StdinSource, collect
from tests.core.test_listen import TOKEN, Received, post, raw_request
from tests.core.test_sources import Sink, line, wait_for
from tests.hostile_corpus import HUGE_INT_JSON, TIMESTAMPS_BAD, TIMESTAMPS_BAD_JSON, TIMESTAMPS_OK


@pytest.fixture
def server() -> Iterator[ListenServer]:
    received = Received()
    srv = ListenServer(port=0, token=TOKEN, on_message=received).start()
    srv.received = received  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def _raw_post(srv: ListenServer, body: bytes) -> tuple[int, dict[str, object]]:
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    status, payload = raw_request(srv, head + body)
    return status, json.loads(payload)


# ------------------------------------------------------------------------------------ one limit


def test_every_feed_has_the_same_message_size_limit() -> None:
    assert DEFAULT_MAX_LINE_BYTES == DEFAULT_MAX_BODY_BYTES == MAX_MESSAGE_BYTES


def test_stdin_skips_an_over_long_line_and_reads_the_next() -> None:
    """Issue 10.13: a 5 MB stdin line became a message at 7a33194 (files capped at 1 MB, HTTP at 64 KB)."""
    huge = line(conversation_id="c", text="x" * (MAX_MESSAGE_BYTES + 10)).encode()
    stream = io.BytesIO(huge + line(conversation_id="c", text="after").encode())
    problems: list[str] = []
    source = StdinSource(stream, on_problem=problems.append)
    assert [m.text for m in collect(source, timeout=5)] == ["after"]
    assert problems == [f"<stdin>:1: line longer than {MAX_MESSAGE_BYTES} bytes, skipped"]


def test_followed_file_rewritten_past_the_old_offset_within_one_poll_loses_nothing(tmp_path: Path) -> None:
    """Issue 10.13: truncate + refill beyond the old offset between two polls lost the first new line."""
    path = tmp_path / "live.jsonl"
    path.write_text(line(conversation_id="c", text="old 1") + line(conversation_id="c", text="old 2"))
    sink = Sink()
    source = JsonlFileSource(path, follow=True, poll_interval=0.6, on_problem=sink.problem)
    source.start(sink.emit)
    try:
        assert wait_for(lambda: sink.texts() == ["old 1", "old 2"])
        time.sleep(0.2)  # the follower is now waiting between polls
        inode = os.stat(path).st_ino
        new = [f"new line {i} with more text than before" for i in range(3)]
        with open(path, "w") as handle:  # same inode, truncated and refilled past the old size
            handle.write("".join(line(conversation_id="c", text=t) for t in new))
        assert os.stat(path).st_ino == inode
        assert wait_for(lambda: sink.texts()[2:] == new, timeout=5), (sink.texts(), sink.problems)
        assert any("truncated or rewritten" in p for p in sink.problems)
        assert not any("invalid JSON" in p for p in sink.problems)
    finally:
        source.stop()


# ------------------------------------------------------------------------------------ timestamps


@pytest.mark.parametrize(("value", "seconds"), TIMESTAMPS_OK, ids=[repr(v) for v, _ in TIMESTAMPS_OK])
def test_epoch_units_are_read_by_magnitude_and_iso_is_accepted(value: object, seconds: float) -> None:
    assert parse_timestamp(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", TIMESTAMPS_BAD, ids=[repr(v)[:20] for v in TIMESTAMPS_BAD])
def test_absurd_timestamps_are_refused_with_a_reason(value: object) -> None:
    """Issue 10.3: ``"ts": 1e300`` was accepted and crashed the UI's clock later."""
    with pytest.raises(ValueError, match="'ts'"):
        parse_timestamp(value)


@pytest.mark.parametrize("raw", TIMESTAMPS_BAD_JSON)
def test_webhook_answers_400_for_a_bad_ts_and_takes_the_next_message(server: ListenServer, raw: str) -> None:
    status, payload = _raw_post(server, f'{{"conversation_id": "c", "text": "hi", "ts": {raw}}}'.encode())
    assert status == 400 and payload["accepted"] is False
    assert post(server, {"conversation_id": "c", "text": "next", "ts": 1764300000000000000})[0] == 202
    assert [m.ts for m in server.received.messages] == [1764300000.0]  # type: ignore[attr-defined]


def test_file_lines_with_bad_ts_or_huge_numbers_are_reported_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text(
        line(conversation_id="c", text="a", ts=1e300)
        + HUGE_INT_JSON
        + "\n"
        + line(conversation_id="c", text="b", ts=1764300000000)
        + line(conversation_id="c", text="c", ts="2025-11-28T03:20:00Z")
    )
    messages, problems = read_conversations(path)
    assert [(m.text, m.ts) for m in messages] == [("b", 1764300000.0), ("c", 1764300000.0)]
    assert [p.split(":")[1] for p in problems] == ["1", "2"]
    assert "'ts'" in problems[0] and "digits" in problems[1]


# ------------------------------------------------------------------------------------ big numbers


def test_a_5000_digit_number_gets_a_400_not_a_dropped_connection(server: ListenServer) -> None:
    """Issue 10.15: json.loads raises ValueError (not JSONDecodeError) and the handler died silently."""
    status, payload = _raw_post(server, HUGE_INT_JSON.encode())
    assert status == 400 and "too large" in str(payload["error"])
    assert post(server, {"conversation_id": "c", "text": "still here"})[0] == 202


# ------------------------------------------------------------------------------------ normal form


def test_webhook_message_with_a_lone_surrogate_is_normalised(server: ListenServer) -> None:
    """Issue 10.1's reproduction: the text arrives as U+FFFD, and the next message goes through too."""
    body = b'{"conversation_id": "a", "text": "x \\ud800 y", "customer": "Ana \\udfff"}'
    assert _raw_post(server, body)[0] == 202
    assert post(server, {"conversation_id": "a", "text": "next"})[0] == 202
    got = server.received.messages  # type: ignore[attr-defined]
    assert [(m.text, m.customer) for m in got] == [("x \ufffd y", "Ana \ufffd"), ("next", None)]
    got[0].text.encode("utf-8")


def test_file_and_stdin_messages_are_normalised(tmp_path: Path) -> None:
    raw = '{"conversation_id": "c", "text": "caf\\u0065\\u0301 \\ud83d\\r\\nend"}\n'
    path = tmp_path / "f.jsonl"
    path.write_text(raw)
    from_file = read_conversations(path)[0]
    from_stdin = collect(StdinSource(io.StringIO(raw)), timeout=5)
    assert [m.text for m in from_file] == [m.text for m in from_stdin] == ["caf\u00e9 \ufffd\nend"]

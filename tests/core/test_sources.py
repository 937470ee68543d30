"""Message sources: parsing, bad lines reported (never fatal), follow mode, stdin (the demo replay: test_demo_replay.py)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csassist.core.errors import CsassistError
from csassist.core.io.conversation_files import (
    LineReader,
    load_conversations,
    read_conversations,
)
from csassist.core.io.demo_replay import DemoReplay
from csassist.core.io.feeds import source_from_args
from csassist.core.io.message_format import parse_message, parse_timestamp
from csassist.core.io.sources import JsonlFileSource, StdinSource, collect
from csassist.core.textnorm import normalize_text
from csassist.core.types import Message


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or timeout (follow-mode tests depend on a polling thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Sink:
    """Thread-safe collector of emitted messages and reported problems."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self.problems: list[str] = []

    def emit(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def texts(self) -> list[str]:
        with self.lock:
            return [m.text for m in self.messages]


def line(**fields: object) -> str:
    return json.dumps(fields) + "\n"


# --------------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------------


def test_minimal_line_defaults_to_customer() -> None:
    message = parse_message({"conversation_id": "c1", "text": "hello"})
    assert message == Message(conversation_id="c1", speaker="customer", text="hello")


def test_full_line_and_timestamps() -> None:
    message = parse_message(
        {"conversation_id": 42, "speaker": "agent", "text": "hi", "customer": " Ana ", "delay": 1.5, "ts": 100, "x": 1}
    )
    assert (message.conversation_id, message.speaker, message.customer, message.delay, message.ts) == (
        "42",
        "agent",
        "Ana",
        1.5,
        100.0,
    )
    assert parse_timestamp("1970-01-01T00:01:40Z") == 100.0
    assert parse_timestamp("1970-01-01T00:01:40") == 100.0  # zone-less = UTC
    assert parse_timestamp("1970-01-01T01:01:40+01:00") == 100.0


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        ([1, 2], "expected a JSON object"),
        ({"text": "x"}, "missing 'conversation_id'"),
        ({"conversation_id": "c"}, "missing 'text'"),
        ({"conversation_id": "c", "text": "   "}, "'text' is empty"),
        ({"conversation_id": "c", "text": 5}, "'text' must be a string"),
        ({"conversation_id": "", "text": "x"}, "'conversation_id' is empty"),
        ({"conversation_id": True, "text": "x"}, "'conversation_id' must be a string"),
        ({"conversation_id": "c\x1b[2J", "text": "x"}, "control characters"),
        ({"conversation_id": "c" * 201, "text": "x"}, "longer than"),
        ({"conversation_id": "c", "text": "x", "speaker": "bot"}, "'speaker' must be"),
        ({"conversation_id": "c", "text": "x", "delay": -1}, "'delay'"),
        ({"conversation_id": "c", "text": "x", "delay": "2"}, "'delay'"),
        ({"conversation_id": "c", "text": "x", "ts": "yesterday"}, "ISO-8601"),
        ({"conversation_id": "c", "text": "x", "ts": math.inf}, "finite"),
        ({"conversation_id": "c", "text": "x", "customer": 7}, "'customer' must be a string"),
    ],
)
def test_invalid_objects_say_why(obj: object, why: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_message(obj)
    assert why in str(info.value)


def test_http_mode_ignores_speaker_and_delay() -> None:
    message = parse_message(
        {"conversation_id": "c", "text": "x", "speaker": "agent", "delay": 9}, allow_speaker=False, allow_delay=False
    )
    assert message.speaker == "customer" and message.delay == 0.0


# --------------------------------------------------------------------------------------------------
# whole files
# --------------------------------------------------------------------------------------------------


def write_bad_file(path: Path) -> None:
    """Valid lines interleaved with every kind of broken line."""
    with open(path, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + line(conversation_id="a", text="first").encode())  # BOM on line 1
        handle.write(b"{not json\n")  # 2
        handle.write(b"\n")  # 3 blank: ignored silently
        handle.write(line(conversation_id="a", text="second", speaker="agent").encode())  # 4
        handle.write(b'"just a string"\n')  # 5
        handle.write(b'{"conversation_id": "b", "text": "caf\xe9"}\n')  # 6 latin-1, not UTF-8
        handle.write(line(conversation_id="b", text="").encode())  # 7
        handle.write(b"[" * 100_000 + b"\n")  # 8 deep nesting
        handle.write(line(conversation_id="b", text="third ✓").encode())  # 9
        handle.write(b'{"conversation_id": "b", "text": "no newline at end"}')  # 10


def test_bad_lines_are_reported_with_file_and_line_and_good_lines_kept(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    write_bad_file(path)
    problems: list[str] = []
    messages = load_conversations(path, problems.append)
    assert [m.text for m in messages] == ["first", "second", "third ✓", "no newline at end"]
    assert [m.speaker for m in messages] == ["customer", "agent", "customer", "customer"]
    numbers = sorted(int(p.split(":")[1]) for p in problems)
    assert numbers == [2, 5, 6, 7, 8]
    assert all(p.startswith(f"{path}:") for p in problems)
    assert any("invalid JSON" in p for p in problems)
    assert any("UTF-8" in p for p in problems)


def test_directory_loads_every_jsonl_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text(line(conversation_id="b", text="from b"))
    (tmp_path / "a.jsonl").write_text(line(conversation_id="a", text="from a"))
    (tmp_path / "notes.txt").write_text("ignored")
    messages, problems = read_conversations(tmp_path)
    assert [m.text for m in messages] == ["from a", "from b"] and problems == []


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CsassistError, match="no such conversation file"):
        load_conversations(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------------------------------
# JSONL file source
# --------------------------------------------------------------------------------------------------


def test_file_source_reads_to_end(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    write_bad_file(path)
    problems: list[str] = []
    source = JsonlFileSource(path, on_problem=problems.append)
    messages = collect(source, timeout=5)
    assert [m.text for m in messages] == ["first", "second", "third ✓", "no newline at end"]
    assert len(problems) == 5


def test_file_source_missing_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(CsassistError, match="no such file"):
        JsonlFileSource(tmp_path / "missing.jsonl").start(lambda m: None)
    with pytest.raises(CsassistError, match="is a directory"):
        JsonlFileSource(tmp_path).start(lambda m: None)


def test_follow_appends_partial_lines_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(line(conversation_id="c", text="m1"))
    sink = Sink()
    source = JsonlFileSource(path, follow=True, poll_interval=0.01, partial_grace=30, on_problem=sink.problem)
    source.start(sink.emit)
    try:
        assert wait_for(lambda: sink.texts() == ["m1"])
        with open(path, "a") as handle:  # appended lines
            handle.write(line(conversation_id="c", text="m2") + "{oops\n")
        assert wait_for(lambda: sink.texts() == ["m1", "m2"])
        assert wait_for(lambda: any(":3: invalid JSON" in p for p in sink.problems))
        half = line(conversation_id="c", text="m3")
        with open(path, "a") as handle:  # a writer caught mid-line
            handle.write(half[:10])
        time.sleep(0.1)
        assert sink.texts() == ["m1", "m2"]
        with open(path, "a") as handle:
            handle.write(half[10:])
        assert wait_for(lambda: sink.texts() == ["m1", "m2", "m3"])
        path.write_text(line(conversation_id="c", text="after truncate"))  # truncation (copytruncate)
        assert wait_for(lambda: sink.texts()[-1:] == ["after truncate"])
        assert any("truncated" in p for p in sink.problems)
        rotated = tmp_path / "live.jsonl.1"
        with open(path, "a") as handle:
            handle.write(line(conversation_id="c", text="last of old"))
        os.rename(path, rotated)  # rotation: a new file appears under the old name
        path.write_text(line(conversation_id="c", text="first of new"))
        assert wait_for(lambda: sink.texts()[-2:] == ["last of old", "first of new"])
        assert any("rotated" in p for p in sink.problems)
    finally:
        source.stop()
    assert source.finished.is_set()
    assert sink.texts().count("m2") == 1  # nothing emitted twice


def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"
    sink = Sink()
    source = JsonlFileSource(path, follow=True, poll_interval=0.01, on_problem=sink.problem)
    source.start(sink.emit)
    try:
        assert wait_for(lambda: any("does not exist yet" in p for p in sink.problems))
        path.write_text(line(conversation_id="c", text="hello"))
        assert wait_for(lambda: sink.texts() == ["hello"])
    finally:
        source.stop()


def test_follow_takes_a_complete_object_left_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "nonl.jsonl"
    path.write_text(json.dumps({"conversation_id": "c", "text": "no newline"}))
    sink = Sink()
    source = JsonlFileSource(path, follow=True, poll_interval=0.01, partial_grace=0.05, on_problem=sink.problem)
    source.start(sink.emit)
    try:
        assert wait_for(lambda: sink.texts() == ["no newline"])
        with open(path, "a") as handle:  # the writer finishes the line later: not emitted twice
            handle.write("\n" + line(conversation_id="c", text="next"))
        assert wait_for(lambda: sink.texts() == ["no newline", "next"])
        time.sleep(0.1)
        assert sink.texts() == ["no newline", "next"] and sink.problems == []
    finally:
        source.stop()


def test_overlong_line_is_skipped_and_the_next_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    big = json.dumps({"conversation_id": "c", "text": "x" * 300_000})
    path.write_text(line(conversation_id="c", text="before") + big + "\n" + line(conversation_id="c", text="after"))
    problems: list[str] = []
    source = JsonlFileSource(path, max_line_bytes=100_000, on_problem=problems.append)
    messages = collect(source, timeout=5)
    assert [m.text for m in messages] == ["before", "after"]
    assert len(problems) == 1 and ":2: line longer than 100000 bytes" in problems[0]


# --------------------------------------------------------------------------------------------------
# stdin
# --------------------------------------------------------------------------------------------------


def test_stdin_source_with_text_stream() -> None:
    stream = io.StringIO(line(conversation_id="s", text="one") + "nope\n" + line(conversation_id="s", text="two"))
    problems: list[str] = []
    messages = collect(StdinSource(stream, on_problem=problems.append), timeout=5)
    assert [m.text for m in messages] == ["one", "two"]
    assert problems == ["<stdin>:2: invalid JSON (Expecting value at column 1), skipped"]


def test_stdin_source_with_a_real_pipe() -> None:
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    sink = Sink()
    source = StdinSource(reader)
    source.start(sink.emit)
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(line(conversation_id="p", text="piped 1").encode())
        writer.flush()
        assert wait_for(lambda: sink.texts() == ["piped 1"])
        writer.write(line(conversation_id="p", text="piped 2").encode())
    assert source.join(5)  # EOF ends the source
    assert sink.texts() == ["piped 1", "piped 2"]
    reader.close()


def test_detach_stdin_gives_the_feed_to_the_source() -> None:
    """In a subprocess with piped stdin: the returned stream reads the feed (no tty in CI is tolerated)."""
    code = (
        "from csassist.core.io.sources import StdinSource, collect, detach_stdin_for_tui\n"
        "stream = detach_stdin_for_tui(require_tty=False)\n"
        "print([m.text for m in collect(StdinSource(stream), timeout=5)])\n"
    )
    feed = line(conversation_id="x", text="via pipe")
    result = subprocess.run([sys.executable, "-c", code], input=feed, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['via pipe']"


def test_source_from_args(tmp_path: Path) -> None:
    assert isinstance(source_from_args(None, speed=2), DemoReplay)
    assert isinstance(source_from_args("-"), StdinSource)
    file_source = source_from_args(str(tmp_path / "f.jsonl"), follow=True)
    assert isinstance(file_source, JsonlFileSource) and file_source.follow
    with pytest.raises(CsassistError, match="--follow"):
        source_from_args("-", follow=True)


# --------------------------------------------------------------------------------------------------
# robustness: arbitrary garbage and arbitrary chunk boundaries
# --------------------------------------------------------------------------------------------------


valid_rows = st.fixed_dictionaries(
    {
        "conversation_id": st.from_regex(r"[a-z0-9\-]{1,12}", fullmatch=True),
        # blank after normalisation (e.g. only NULs) is not a message: keep the strategy to real ones
        "text": st.text(min_size=1).filter(lambda s: normalize_text(s).strip()),
    },
    optional={"customer": st.text(max_size=10), "speaker": st.sampled_from(["customer", "agent"])},
)
garbage_rows = st.one_of(
    st.binary(max_size=40).filter(
        # a line that is only a byte-order mark is blank, not garbage
        lambda b: b"\n" not in b
        and b.decode("utf-8", "replace").replace("\ufeff", "").strip()
        and not b.strip().startswith(b"{")
    ),
    st.just(b'{"conversation_id": "x"}'),
    st.just(b'{"text": "only text"}'),
    st.just(b"{"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(valid_rows, garbage_rows), max_size=25))
def test_garbage_never_costs_a_valid_line(tmp_path: Path, rows: list[dict[str, str] | bytes]) -> None:
    """Every valid line comes out, in order; every garbage line is one problem; nothing raises."""
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows))
    messages, problems = read_conversations(path)
    expected = [normalize_text(r["text"]) for r in rows if isinstance(r, dict)]  # NFC, no NUL, \n line ends
    assert [m.text for m in messages] == expected
    assert len(problems) == sum(isinstance(r, bytes) for r in rows)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(valid_rows, min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30),
)
def test_any_chunking_of_the_stream_gives_the_same_messages(rows: list[dict[str, str]], cuts: list[int]) -> None:
    """A follower sees the file in arbitrary pieces (writer mid-line, partial UTF-8): same result."""
    data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
    sink = Sink()
    source = JsonlFileSource(Path("virtual.jsonl"), on_problem=sink.problem)
    source._emit_cb = sink.emit  # drive the chunk parser directly: no thread, no timing
    reader = LineReader("virtual.jsonl", sink.problem)
    buffer = bytearray()
    discarding, emitted_prefix = False, 0
    position = 0
    for cut in cuts * (len(data) // max(1, sum(cuts)) + 1):
        if position >= len(data):
            break
        chunk = data[position : position + cut]
        position += cut
        discarding, emitted_prefix = source._consume(chunk, buffer, reader, discarding, emitted_prefix)
    if position < len(data):
        discarding, emitted_prefix = source._consume(data[position:], buffer, reader, discarding, emitted_prefix)
    assert sink.problems == []
    assert [m.text for m in sink.messages] == [normalize_text(r["text"]) for r in rows]  # NFC, \n line ends


def test_follow_under_load_delivers_every_line_exactly_once(tmp_path: Path) -> None:
    """2,000 lines appended in random-sized writes (cut mid-line, mid-UTF-8) while being followed."""
    import random

    path = tmp_path / "load.jsonl"
    path.write_bytes(b"")
    data = b"".join(
        json.dumps({"conversation_id": f"c{i % 10}", "text": f"msg {i} ünïcödé"}, ensure_ascii=False).encode() + b"\n"
        for i in range(2000)
    )
    sink = Sink()
    source = JsonlFileSource(path, follow=True, poll_interval=0.005, partial_grace=0.5, on_problem=sink.problem)
    source.start(sink.emit)
    rng = random.Random(7)
    try:
        with open(path, "ab", buffering=0) as handle:
            position = 0
            while position < len(data):
                size = rng.randint(1, 4000)
                handle.write(data[position : position + size])
                position += size
                if rng.random() < 0.05:
                    time.sleep(0.002)
        assert wait_for(lambda: len(sink.messages) >= 2000, timeout=20)
        time.sleep(0.05)
    finally:
        source.stop()
    assert sink.problems == []
    assert [m.text for m in sink.messages] == [f"msg {i} ünïcödé" for i in range(2000)]


def test_stdin_binary_stream_reports_bad_utf8_and_keeps_going() -> None:
    stream = io.BytesIO(
        b'{"conversation_id": "s", "text": "caf\xe9"}\n' + line(conversation_id="s", text="ok").encode()
    )
    problems: list[str] = []
    messages = collect(StdinSource(stream, on_problem=problems.append), timeout=5)
    assert [m.text for m in messages] == ["ok"]
    assert len(problems) == 1 and problems[0].startswith("<stdin>:1: not valid UTF-8")


def test_a_text_that_normalises_to_nothing_is_a_reported_line(tmp_path: Path) -> None:
    """Only NULs is an empty message: reported with its line, not delivered as a blank turn."""
    path = tmp_path / "nul.jsonl"
    path.write_text(json.dumps({"conversation_id": "a", "text": "\x00\x00"}) + "\n" + json.dumps({"conversation_id": "a", "text": "ok"}) + "\n")
    messages, problems = read_conversations(path)
    assert [m.text for m in messages] == ["ok"]
    assert len(problems) == 1 and "empty" in str(problems[0])

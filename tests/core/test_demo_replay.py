"""The demo replay: the bundled conversations interleaved on their own clocks, sped up, looped,
waiting for the agent's reply where the script does, and stopping promptly.

Split from test_sources.py (the feeds, files and stdin), which it shares its helpers with.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from csassist.core.errors import CsassistError
from csassist.core.io.conversation_files import demo_conversations_dir, read_conversations
from csassist.core.io.demo_replay import DemoReplay, build_schedule
from csassist.core.io.message_format import parse_message
from csassist.core.io.sources import MessageSource, collect
from csassist.core.types import Message
from tests.core.test_sources import Sink, line, wait_for


def msg(cid: str, text: str, delay: float = 0.0, speaker: str = "customer") -> Message:
    return parse_message({"conversation_id": cid, "text": text, "delay": delay, "speaker": speaker})


def test_schedule_interleaves_contiguous_conversations() -> None:
    """Conversations written one after another get their own clocks and overlap."""
    messages = [
        msg("A", "a1", 0),
        msg("A", "ra1", 5, "agent"),
        msg("A", "a2", 5),
        msg("B", "b1", 3),
        msg("B", "b2", 4),
    ]
    schedule = build_schedule(messages)
    assert [(t, m.text) for t, m in schedule] == [(0.0, "a1"), (3.0, "b1"), (7.0, "b2"), (10.0, "a2")]
    with_agent = build_schedule(messages, include_agent=True)
    assert [m.text for _, m in with_agent] == ["a1", "b1", "ra1", "b2", "a2"]


def test_schedule_keeps_an_already_interleaved_file_literal() -> None:
    messages = [msg("A", "a1", 1), msg("B", "b1", 2), msg("A", "a2", 3)]
    assert [(t, m.text) for t, m in build_schedule(messages)] == [(1.0, "a1"), (3.0, "b1"), (6.0, "a2")]


def write_demo(dir_: Path) -> None:
    dir_.mkdir(parents=True, exist_ok=True)
    rows = [
        {"conversation_id": "A", "speaker": "customer", "text": "a1", "customer": "Ana", "delay": 0},
        {"conversation_id": "A", "speaker": "agent", "text": "reply", "delay": 2},
        {"conversation_id": "A", "speaker": "customer", "text": "a2", "delay": 2},
        {"conversation_id": "B", "speaker": "customer", "text": "b1", "delay": 1},
        {"conversation_id": "B", "text": "b2", "delay": 1},
    ]
    (dir_ / "demo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")


def test_demo_replay_emits_interleaved_with_fresh_timestamps(tmp_path: Path) -> None:
    write_demo(tmp_path / "conv")
    problems: list[str] = []
    replay = DemoReplay(tmp_path / "conv", speed=1e6, on_problem=problems.append)
    assert isinstance(replay, MessageSource)
    before = time.time()
    messages = collect(replay, timeout=5)
    assert [m.text for m in messages] == ["a1", "b1", "b2", "a2"]
    assert all(m.ts >= before for m in messages)
    assert messages[0].customer == "Ana"
    assert replay.finished.is_set() and replay.emitted == 4
    assert len(problems) == 1 and ":6: invalid JSON" in problems[0]


def test_demo_replay_respects_speed(tmp_path: Path) -> None:
    write_demo(tmp_path / "conv")
    replay = DemoReplay(tmp_path / "conv", speed=40.0)  # 4 s of script -> 0.1 s
    start = time.monotonic()
    messages = collect(replay, timeout=5)
    elapsed = time.monotonic() - start
    assert len(messages) == 4
    assert 0.09 <= elapsed < 2.0


def test_demo_lead_in_shortens_the_wait_for_the_first_message(tmp_path: Path) -> None:
    (tmp_path / "late.jsonl").write_text(
        line(conversation_id="A", text="a", delay=30) + line(conversation_id="B", text="b", delay=0.5)
    )
    replay = DemoReplay(tmp_path / "late.jsonl", speed=10.0, lead_in=0.2)
    start = time.monotonic()
    messages = collect(replay, timeout=5)
    assert [m.text for m in messages] == ["a", "b"]
    assert time.monotonic() - start < 1.0  # (0.2 + 0.5) / 10 s instead of 3.05 s
    replay_raw = DemoReplay(tmp_path / "late.jsonl", lead_in=None)
    replay_raw._prepare()
    assert [t for t, _ in replay_raw._events] == [30.0, 30.5]


def test_demo_replay_stops_promptly_during_a_long_delay(tmp_path: Path) -> None:
    (tmp_path / "slow.jsonl").write_text(
        line(conversation_id="A", text="now") + line(conversation_id="A", text="later", delay=3600)
    )
    sink = Sink()
    replay = DemoReplay(tmp_path / "slow.jsonl")
    replay.start(sink.emit)
    assert wait_for(lambda: sink.texts() == ["now"])
    start = time.monotonic()
    replay.stop()
    assert time.monotonic() - start < 1.0
    assert replay.finished.is_set() and sink.texts() == ["now"]


def test_demo_loop_renames_conversations(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(line(conversation_id="A", text="hi"))
    sink = Sink()
    replay = DemoReplay(tmp_path / "d.jsonl", speed=1e6, loop=True, loop_gap=1.0)
    replay.start(sink.emit)
    assert wait_for(lambda: len(sink.messages) >= 3)
    replay.stop()
    assert [m.conversation_id for m in sink.messages[:3]] == ["A", "A~2", "A~3"]


def test_demo_without_conversations_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("{bad\n")
    with pytest.raises(CsassistError, match="no demo conversations"):
        DemoReplay(tmp_path / "empty.jsonl").start(lambda m: None)
    with pytest.raises(CsassistError, match="speed must be positive"):
        DemoReplay(tmp_path, speed=0)


def test_receiver_failure_is_reported_and_replay_goes_on(tmp_path: Path) -> None:
    write_demo(tmp_path / "conv")
    seen: list[str] = []

    def flaky(message: Message) -> None:
        seen.append(message.text)
        if message.text == "b1":
            raise RuntimeError("UI hiccup")

    def bad_problem_sink(text: str) -> None:
        raise RuntimeError("sink broken too")

    replay = DemoReplay(tmp_path / "conv", speed=1e6, on_problem=bad_problem_sink)
    replay.start(flaky)
    assert replay.join(5)
    assert seen == ["a1", "b1", "b2", "a2"] and replay.emitted == 3
    assert any("UI hiccup" in p for p in replay.problems)


def test_bundled_demo_conversations_parse_cleanly() -> None:
    """The demo shipped in kb/conversations (written by the KB owner) has no broken lines."""
    folder = demo_conversations_dir()
    if not folder.is_dir() or not any(folder.glob("*.jsonl")):
        pytest.skip("kb/conversations not written yet")
    messages, problems = read_conversations(folder)
    assert problems == []
    assert len({m.conversation_id for m in messages}) >= 8
    assert build_schedule(messages)


def test_several_demo_files_replay_in_parallel(tmp_path: Path) -> None:
    (tmp_path / "one.jsonl").write_text(
        line(conversation_id="A", text="a1", delay=0) + line(conversation_id="A", text="a2", delay=3)
    )
    (tmp_path / "two.jsonl").write_text(
        line(conversation_id="B", text="b1", delay=1) + line(conversation_id="B", text="b2", delay=1)
    )
    messages = collect(DemoReplay(tmp_path, speed=1e6, lead_in=None), timeout=5)
    assert [m.text for m in messages] == ["a1", "b1", "b2", "a2"]


def test_demo_waits_for_the_agents_reply_before_the_customers_follow_up(tmp_path: Path) -> None:
    """Opening lines arrive on the script's clock; a line that answers the script's agent waits for ours."""
    script = tmp_path / "demo.jsonl"
    lines = [
        {"conversation_id": "a", "speaker": "customer", "text": "hi, my order is late", "delay": 0},
        {"conversation_id": "a", "speaker": "customer", "text": "order LK-204817", "delay": 0},
        {"conversation_id": "b", "speaker": "customer", "text": "where is my refund?", "delay": 0},
        {"conversation_id": "a", "speaker": "agent", "text": "Sorry! Checking.", "delay": 0},
        {"conversation_id": "a", "speaker": "agent", "text": "It ships today.", "delay": 0},
        {"conversation_id": "a", "speaker": "customer", "text": "thanks!", "delay": 0},
    ]
    script.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    got: list[Message] = []
    replay = DemoReplay(script, speed=1000, wait_for_agent=True)
    replay.start(got.append)
    try:
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert [m.text for m in got] == ["hi, my order is late", "order LK-204817", "where is my refund?"]
        replay.agent_replied("b")  # a reply elsewhere releases nothing in "a"
        replay.agent_replied("a")
        replay.agent_replied("a")  # two replies in a row are one agent turn
        deadline = time.monotonic() + 5
        while len(got) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got[-1].text == "thanks!"
        assert replay.join(2)
    finally:
        replay.stop()

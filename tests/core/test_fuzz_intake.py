"""Issue 10 fuzz: webhook bodies, feed lines and KB front matter built from the hostile corpus.

Whatever arrives, no exception escapes the intake, every request gets an answer, and the *next*
message is still analysed.  Bounded for CI: a few dozen examples per target, no per-example
deadline (the shared CI machine is slow), the whole module well under 30 s.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from csassist.core.io.listen import ListenServer
from csassist.core.io.sources import StdinSource, collect
from csassist.core.knowledge.kb import load_kb
from csassist.core.types import Message
from csassist.core.understand.analysis import Analyzer
from csassist.core.understand.redact import redact_for_storage
from tests.hostile_corpus import (
    HOSTILE_SHORT,
    HUGE_DIGITS,
    REGEX_BOMBS,
    TIMESTAMPS_BAD_JSON,
)

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOKEN = "fuzz-token"

hostile_text = st.one_of(
    st.sampled_from(HOSTILE_SHORT),
    st.sampled_from([v[:3000] for _, v in REGEX_BOMBS]),
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec=None), max_size=40),  # surrogates included
)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), hostile_text
)
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
message_obj = st.fixed_dictionaries(
    {},
    optional={
        "conversation_id": st.one_of(hostile_text, st.integers(), json_value),
        "text": st.one_of(hostile_text, json_value),
        "customer": st.one_of(hostile_text, json_value),
        "ts": st.one_of(json_scalar, st.sampled_from([1e300, 1.8e18, 10**25, -5, "2025-13-45T99:00:00"])),
        "speaker": st.sampled_from(["customer", "agent", "bot", ""]),
        "delay": json_scalar,
    },
)


def _encode(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=True, allow_nan=True).encode()


raw_body = st.one_of(
    message_obj.map(_encode),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b'{"conversation_id": "c", "text": "x \\ud800 y"}',
            ('{"conversation_id": "c", "text": "hi", "n": ' + HUGE_DIGITS + "}").encode(),
            b'{"conversation_id": "c", "text": "hi", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            *(f'{{"conversation_id": "c", "text": "hi", "ts": {t}}}'.encode() for t in TIMESTAMPS_BAD_JSON),
        ]
    ),
)


class Analysed:
    """The receiver an app would be: analyse every accepted message at once (and store it redacted)."""

    def __init__(self) -> None:
        self.analyzer = Analyzer(None)
        self.lock = threading.Lock()
        self.texts: list[str] = []

    def __call__(self, message: Message) -> None:
        analysis = self.analyzer.analyze(message.text)
        redact_for_storage(message.text)
        with self.lock:
            self.texts.append(analysis.redacted_text)


@pytest.fixture(scope="module")
def intake() -> Iterator[tuple[ListenServer, Analysed]]:
    receiver = Analysed()
    server = ListenServer(port=0, token=TOKEN, on_message=receiver).start()
    yield server, receiver
    server.stop()


def _post(server: ListenServer, body: bytes) -> int:
    """POST over a fresh connection; a dropped connection raises (and fails the test)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        conn.request(
            "POST", "/v1/messages", body=body, headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        )
        response = conn.getresponse()
        json.loads(response.read())
        return response.status
    finally:
        conn.close()


@FUZZ
@given(body=raw_body)
def test_fuzz_webhook_always_answers_and_keeps_analysing(intake: tuple[ListenServer, Analysed], body: bytes) -> None:
    server, receiver = intake
    assert _post(server, body) in (202, 400, 413)
    before = len(receiver.texts)
    assert _post(server, _encode({"conversation_id": "next", "text": "where is order LK-123456?"})) == 202
    assert len(receiver.texts) == before + 1 and "LK-123456" in receiver.texts[-1]


feed_line = st.one_of(raw_body, message_obj.map(lambda o: json.dumps(o, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")))


@FUZZ
@given(lines=st.lists(feed_line, min_size=1, max_size=5))
def test_fuzz_feed_lines_never_stop_the_feed(lines: list[bytes]) -> None:
    data = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    good = _encode({"conversation_id": "last", "text": "the last line still arrives"}) + b"\n"
    problems: list[str] = []
    source = StdinSource(io.BytesIO(data + good), on_problem=problems.append)
    got = collect(source, timeout=20)
    assert got and got[-1].text == "the last line still arrives"
    assert not any("unexpected error" in p for p in problems), problems
    for message in got:
        message.text.encode("utf-8")
        Analyzer(None).analyze(message.text)


#: Nested YAML aliases: a few hundred bytes that expand to millions of items if anything walks them.
BILLION_LAUGHS = (
    "a: &a [1, 2]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "tags: [*e, *e, *e, *e, *e, *e, *e, *e, *e]"
)
yaml_piece = st.sampled_from(
    [
        "id: x", "title: T", "intents: [a, b]", "tags: {a: 1}", "questions: [[[]]]", "id: &a [*a]",
        "title: !!python/object/apply:os.system ['echo pwned']", "id: " + HUGE_DIGITS, "title: 2026-13-45",
        BILLION_LAUGHS,
        "intents: " + "[" * 200 + "]" * 200, "title: '\x1b]52;c;eA==\x07'", "id: ~", "title: !!binary aGk=",
        "{", "- a", ": :", "\t", "id: 1e309", "title: .nan",
    ]
)


@FUZZ
@example(front=["id: " + HUGE_DIGITS, "title: x"])  # ValueError from int(): escaped load_kb
@example(front=["id: x", "title: 2026-13-45"])  # ValueError from date(): escaped load_kb
@example(front=["id: x", "title: T", "intents: &a [*a]"])
@example(front=["id: x", "title: T", BILLION_LAUGHS])  # its repr (54 KB per item) went into the report
@given(front=st.lists(st.one_of(yaml_piece, hostile_text.map(lambda t: "title: " + json.dumps(t))), max_size=5))
def test_fuzz_kb_front_matter_never_stops_the_load(tmp_path_factory: pytest.TempPathFactory, front: list[str]) -> None:
    root = tmp_path_factory.mktemp("kb")
    (root / "good.md").write_text("---\nid: good\ntitle: Good\n---\nRefunds take five days.\n")
    body = "---\n" + "\n".join(front) + "\n---\nSome body text.\n"
    (root / "fuzzed.md").write_bytes(body.encode("utf-8", "surrogatepass"))
    kb = load_kb(Path(root))
    assert "good" in {a.article_id for a in kb.articles}
    for problem in kb.problems:
        assert len(str(problem)) < 5000  # a problem line never echoes an expanded structure

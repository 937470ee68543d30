"""The server backend against a real local HTTP server speaking OpenAI-style SSE streaming."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from csassist.core.errors import BackendError
from csassist.core.pipeline import Assistant
from csassist.core.reply.generation import Generator, load_generator
from csassist.core.reply.generation_server import ServerGenerator
from csassist.core.types import CancelToken, Message, Passage
from csassist.settings import GenerationSettings, Settings


class FakeOpenAI(BaseHTTPRequestHandler):
    """Streams ``server.reply`` word by word as chat.completion.chunk events."""

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        srv = self.server
        srv.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})  # type: ignore[attr-defined]
        if srv.status != 200:  # type: ignore[attr-defined]
            self.send_response(srv.status)  # type: ignore[attr-defined]
            self.end_headers()
            self.wfile.write(b'{"error": "model not loaded"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": keep-alive comment\n\n")
        words = srv.reply.split(" ")  # type: ignore[attr-defined]
        try:
            first = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
            self.wfile.write(f"data: {json.dumps(first)}\n\n".encode())
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                srv.sent += 1  # type: ignore[attr-defined]
                time.sleep(srv.delay)  # type: ignore[attr-defined]
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            srv.disconnected = True  # type: ignore[attr-defined]


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    srv.requests, srv.status, srv.delay, srv.sent, srv.disconnected = [], 200, 0.0, 0, False  # type: ignore[attr-defined]
    srv.reply = "We are sorry your item arrived damaged. Please send a photo and we will refund you."  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


MSGS = [
    {"role": "system", "content": "be nice"},
    {"role": "user", "content": "<customer_message>\nhi\n</customer_message>"},
]


def test_streams_sse_pieces_and_sends_openai_request(server) -> None:  # type: ignore[no-untyped-def]
    gen = ServerGenerator(url(server), model="smollm2", api_key="sekret", timeout_s=5)
    assert isinstance(gen, Generator)
    pieces = list(gen.stream(MSGS, max_new_tokens=50, temperature=0.3, seed=4, cancel=CancelToken()))
    assert "".join(pieces) == server.reply and len(pieces) == len(server.reply.split(" "))
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sekret"
    assert req["body"] == {
        "messages": MSGS,
        "stream": True,
        "max_tokens": 50,
        "temperature": 0.3,
        "seed": 4,
        "model": "smollm2",
    }


def test_cancel_stops_reading_within_one_event(server) -> None:  # type: ignore[no-untyped-def]
    server.reply = " ".join(f"w{i}" for i in range(200))
    server.delay = 0.01
    gen = ServerGenerator(url(server), timeout_s=5)
    cancel = CancelToken()
    got = []
    for piece in gen.stream(MSGS, max_new_tokens=200, temperature=0.0, seed=0, cancel=cancel):
        got.append(piece)
        if len(got) == 3:
            cancel.cancel()
    assert len(got) == 3
    time.sleep(0.3)
    assert server.sent < 200  # the server saw the client go away


def test_http_error_is_backend_error(server) -> None:  # type: ignore[no-untyped-def]
    server.status = 503
    gen = ServerGenerator(url(server), timeout_s=5)
    with pytest.raises(BackendError, match="HTTP 503.*model not loaded"):
        list(gen.stream(MSGS, max_new_tokens=5, temperature=0.0, seed=0, cancel=CancelToken()))


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nobody listens there
    gen = ServerGenerator(f"http://127.0.0.1:{port}/v1", timeout_s=2)
    with pytest.raises(BackendError, match=rf"cannot reach the generation server at http://127.0.0.1:{port}/v1"):
        list(gen.stream(MSGS, max_new_tokens=5, temperature=0.0, seed=0, cancel=CancelToken()))


def test_timeout_is_a_clear_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP connection but never answers
        gen = ServerGenerator(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", timeout_s=0.5)
        with pytest.raises(BackendError, match="timed out"):
            list(gen.stream(MSGS, max_new_tokens=5, temperature=0.0, seed=0, cancel=CancelToken()))


def test_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendError, match="CSASSIST_SERVER_URL"):
        load_generator(Settings(generation=GenerationSettings(backend="server")))
    with pytest.raises(BackendError, match="must look like"):
        ServerGenerator("ftp://x")
    assert load_generator(Settings(generation=GenerationSettings(backend="extractive"))) is None


def test_assistant_with_server_backend_end_to_end(server) -> None:  # type: ignore[no-untyped-def]
    gen = load_generator(Settings(generation=GenerationSettings(backend="server", server_url=url(server))))
    assert gen is not None and gen.backend == "server"
    # free drafting: the server's whole reply is the draft (the strategies are tested in test_strategy.py)
    a = Assistant(Settings(generation=GenerationSettings(strategy="free")), generator=gen, analyzer=None)
    p = Passage("damaged-item-refund#0", "damaged-item-refund", "Damaged", "Send a photo; we refund you.", "x", 0.9)
    msg = Message("c9", "customer", "my parcel arrived damaged")
    done = [u for u in a.suggest(msg, [], None, [p], CancelToken(), n=2) if u.done]
    assert done[0].backend == "extractive" and done[1].suggestion is not None
    s = done[1].suggestion
    assert s.backend == "server" and s.text == server.reply and s.source_ids == ("damaged-item-refund",)
    assert json.loads(s.prompt)[-1]["content"].count("my parcel arrived damaged") == 1
    server.status = 500
    failed = [u for u in a.suggest(msg, [], None, [p], CancelToken(), n=3) if u.done]
    assert failed[0].suggestion is not None and "HTTP 500" in (failed[1].error or "") and failed[2].error

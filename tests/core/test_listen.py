"""The HTTP intake over real sockets: every status code, auth, limits, concurrency, address parsing."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from csassist.core.errors import CsassistError
from csassist.core.io.listen import ListenServer, start_listen_server
from csassist.core.io.listen_address import is_loopback_host, parse_listen_address
from csassist.core.types import Message

TOKEN = "test-token-123"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Received:
    """Thread-safe list of delivered messages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture
def server(received: Received) -> Iterator[ListenServer]:
    srv = ListenServer(port=0, token=TOKEN, max_body_bytes=1024, on_message=received)
    srv.start()
    yield srv
    srv.stop()


def post(
    server: ListenServer,
    body: bytes | dict[str, object],
    *,
    token: str | None = TOKEN,
    path: str = "/v1/messages",
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    """One request through urllib (no proxies); returns status and decoded JSON body."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(server.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def raw_request(server: ListenServer, payload: bytes) -> tuple[int, bytes]:
    """Send hand-written HTTP bytes (for chunked / missing length) and parse the status line."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_accepts_a_message(server: ListenServer, received: Received) -> None:
    before = time.time()
    status, body = post(server, {"conversation_id": "c-1", "text": "Where is my order?", "customer": "Ana"})
    assert status == 202 and body["accepted"] is True and isinstance(body["id"], str) and len(body["id"]) == 32
    (message,) = received.messages
    assert (message.conversation_id, message.text, message.customer, message.speaker) == (
        "c-1",
        "Where is my order?",
        "Ana",
        "customer",
    )
    assert message.ts >= before  # no ts given -> arrival time


def test_ts_and_hostile_text_pass_through_as_data(server: ListenServer, received: Received) -> None:
    text = "[bold red]hi[/] \x1b]52;c;ZXZpbA==\x07"
    status, _ = post(server, {"conversation_id": "c", "text": text, "ts": "2026-01-02T03:04:05Z", "speaker": "agent"})
    assert status == 202
    (message,) = received.messages
    assert message.text == text  # rendering makes it safe; the intake never alters content
    assert message.speaker == "customer"  # the API only takes customer messages
    assert message.ts == 1767323045.0


@pytest.mark.parametrize("token", [None, "wrong", "", TOKEN + "x"])
def test_401_without_or_with_wrong_token(server: ListenServer, received: Received, token: str | None) -> None:
    status, body = post(server, {"conversation_id": "c", "text": "x"}, token=token)
    assert status == 401 and body["accepted"] is False
    assert received.messages == []


def test_401_for_other_auth_schemes(server: ListenServer) -> None:
    status, _ = post(server, {"conversation_id": "c", "text": "x"}, token=None, headers={"Authorization": TOKEN})
    assert status == 401
    status, _ = post(
        server, {"conversation_id": "c", "text": "x"}, token=None, headers={"Authorization": f"Basic {TOKEN}"}
    )
    assert status == 401


def test_413_when_body_is_over_the_limit(server: ListenServer, received: Received) -> None:
    status, body = post(server, {"conversation_id": "c", "text": "x" * 2000})
    assert status == 413 and "1024" in str(body["error"])
    assert received.messages == []
    # the server still works afterwards
    assert post(server, {"conversation_id": "c", "text": "ok"})[0] == 202


def test_413_is_decided_from_content_length_before_reading(server: ListenServer) -> None:
    """A client announcing 10 MB gets 413 without the server waiting for (or reading) the body."""
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    ).encode()
    start = time.monotonic()
    status, _ = raw_request(server, head + b"{")
    assert status == 413
    assert time.monotonic() - start < 5


def test_411_for_chunked_or_missing_length(server: ListenServer) -> None:
    chunked = (
        f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ).encode()
    assert raw_request(server, chunked)[0] == 411
    missing = f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    assert raw_request(server, missing.encode())[0] == 411
    bad = f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: -3\r\n\r\n"
    assert raw_request(server, bad.encode())[0] == 400


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"text": "x"}', "missing 'conversation_id'"),
        (b'{"conversation_id": "c"}', "missing 'text'"),
        (b'{"conversation_id": "c", "text": ""}', "'text' is empty"),
        (b'{"conversation_id": "c", "text": "x", "ts": "soon"}', "ISO-8601"),
        (b"[" * 1000, "not valid UTF-8 JSON"),
    ],
)
def test_400_for_bad_json_or_fields(server: ListenServer, received: Received, body: bytes, why: str) -> None:
    status, answer = post(server, body)
    assert status == 400 and why in str(answer["error"])
    assert received.messages == []


def test_404_and_405(server: ListenServer) -> None:
    assert post(server, {"conversation_id": "c", "text": "x"}, path="/v1/other")[0] == 404
    assert post(server, b"", path="/", method="GET")[0] == 404
    assert post(server, b"", method="GET")[0] == 405
    assert post(server, b"", method="PUT")[0] == 405
    assert post(server, b"", method="DELETE")[0] == 405
    assert post(server, b"", path="/v1/health", method="POST")[0] == 405
    assert raw_request(server, b"BREW /v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 405


def test_health_and_query_strings(server: ListenServer) -> None:
    assert post(server, b"", path="/v1/health", method="GET", token=None) == (200, {"ok": True})
    assert post(server, {"conversation_id": "c", "text": "x"}, path="/v1/messages?src=test")[0] == 202


def test_receiver_failure_answers_503(received: Received) -> None:
    problems: list[str] = []

    def broken(message: Message) -> None:
        raise RuntimeError("queue full")

    with ListenServer(token=TOKEN, on_message=broken, on_problem=problems.append) as srv:
        status, body = post(srv, {"conversation_id": "c", "text": "x"})
    assert status == 503 and "retry" in str(body["error"])
    assert problems and "queue full" in problems[0]


def test_fifty_concurrent_posts_are_all_delivered(server: ListenServer, received: Received) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        status, _ = post(server, {"conversation_id": f"c{i % 7}", "text": f"message {i}"})
        with lock:
            results.append(status)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results.count(202) == 50
    assert sorted(m.text for m in received.messages) == sorted(f"message {i}" for i in range(50))
    assert server.stats[202] == 50


def test_keep_alive_connection_serves_several_requests(server: ListenServer, received: Received) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for i in range(3):
            body = json.dumps({"conversation_id": "k", "text": f"t{i}"})
            conn.request("POST", "/v1/messages", body, {"Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            assert response.status == 202
            response.read()
    finally:
        conn.close()
    assert [m.text for m in received.messages] == ["t0", "t1", "t2"]


def test_generated_token_and_urls(received: Received) -> None:
    with ListenServer(on_message=received) as srv:
        assert len(srv.token) >= 32
        assert srv.url == f"http://127.0.0.1:{srv.port}" and srv.port > 0
        assert srv.messages_url.endswith("/v1/messages")
        assert srv.token in srv.curl_example()
        assert post(srv, {"conversation_id": "c", "text": "x"}, token=srv.token)[0] == 202
    assert ListenServer(token="  ", on_message=received).token.strip() != ""


def test_stop_closes_the_port(received: Received) -> None:
    srv = ListenServer(on_message=received).start()
    port = srv.port
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_non_loopback_needs_explicit_permission(received: Received) -> None:
    with pytest.raises(CsassistError, match="reachable from other machines"):
        ListenServer(host="0.0.0.0", on_message=received)
    srv = ListenServer(host="0.0.0.0", on_message=received, allow_remote=True).start()
    try:
        assert post(srv, b"", path="/v1/health", method="GET")[0] == 200
    finally:
        srv.stop()


def test_port_in_use_is_a_clear_error(server: ListenServer, received: Received) -> None:
    with pytest.raises(CsassistError, match="cannot listen on 127.0.0.1"):
        ListenServer(port=server.port, on_message=received).start()


def test_ipv6_loopback(received: Received) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = ListenServer(host="::1", on_message=received, token=TOKEN).start()
    except CsassistError:
        pytest.skip("IPv6 loopback not available here")
    try:
        assert srv.url.startswith("http://[::1]:")
        assert post(srv, {"conversation_id": "c", "text": "v6"})[0] == 202
    finally:
        srv.stop()


def test_parse_listen_address() -> None:
    assert parse_listen_address("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_listen_address("8765") == ("127.0.0.1", 8765)
    assert parse_listen_address(":8765") == ("127.0.0.1", 8765)
    assert parse_listen_address("localhost:0") == ("localhost", 0)
    assert parse_listen_address("[::1]:9000") == ("::1", 9000)
    assert parse_listen_address("0.0.0.0:80") == ("0.0.0.0", 80)
    for bad in ["", "host:", "host:port", "1.2.3.4:70000", "::1:80", "[::1]80", "h:-1"]:
        with pytest.raises(CsassistError):
            parse_listen_address(bad)


def test_is_loopback_host() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.1.2.3") and is_loopback_host("::1")
    assert is_loopback_host("localhost") and is_loopback_host("LOCALHOST")
    assert (
        not is_loopback_host("0.0.0.0") and not is_loopback_host("192.168.1.5") and not is_loopback_host("example.com")
    )


# --------------------------------------------------------------------------------------------------
# robustness: hostile clients never take the intake down
# --------------------------------------------------------------------------------------------------


def health(server: ListenServer) -> int:
    return post(server, b"", path="/v1/health", method="GET", token=None)[0]


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\xff\xfe garbage \r\n\r\n",
        b"GET\r\n\r\n",
        b"POST /v1/messages HTTP/9.9\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
        b"",
    ],
)
def test_malformed_requests_are_answered_or_dropped_and_the_server_survives(
    server: ListenServer, received: Received, payload: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500 or status == 505  # 505: HTTP version not supported
    assert health(server) == 200
    assert received.messages == []


def test_a_stalled_client_does_not_block_others(server: ListenServer, received: Received) -> None:
    """Slowloris: one connection sends half a request and stalls; other clients are still served."""
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        stalled.sendall(
            f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 50\r\n\r\n{{".encode()
        )
        start = time.monotonic()
        assert post(server, {"conversation_id": "c", "text": "still served"})[0] == 202
        assert time.monotonic() - start < 2
    finally:
        stalled.close()
    assert [m.text for m in received.messages] == ["still served"]


def test_token_compare_handles_non_ascii_header(server: ListenServer) -> None:
    """A Latin-1 header value (http.client allows it) is a 401, not a crash."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/messages")
        conn.putheader("Authorization", "Bearer t\xe9st".encode("latin-1"))
        conn.putheader("Content-Length", "2")
        conn.endheaders(b"{}")
        assert conn.getresponse().status == 401
    finally:
        conn.close()


def test_start_listen_server_from_cli_value(received: Received) -> None:
    problems: list[str] = []
    srv = start_listen_server("127.0.0.1:0", on_message=received, token=TOKEN, on_problem=problems.append)
    try:
        assert srv.host == "127.0.0.1" and srv.port > 0 and problems == []
        assert post(srv, {"conversation_id": "c", "text": "x"})[0] == 202
    finally:
        srv.stop()
    remote = start_listen_server("0.0.0.0:0", on_message=received, on_problem=problems.append)
    try:
        assert remote.allow_remote and len(problems) == 1 and "reachable from other machines" in problems[0]
    finally:
        remote.stop()


def test_the_documented_curl_command_works(server: ListenServer, received: Received) -> None:
    """The command shown to the user at start (and in the README) really delivers a message."""
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    result = subprocess.run(server.curl_example(), shell=True, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accepted"] is True
    assert received.messages[0].text == "Hello, where is my order?"


def test_keep_alive_client_is_not_throttled_by_nagle(server: ListenServer, received: Received) -> None:
    """One connection posting back-to-back must not pay a ~40 ms delayed-ACK stall per request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    start = time.monotonic()
    try:
        for i in range(150):
            conn.request(
                "POST",
                "/v1/messages",
                json.dumps({"conversation_id": "n", "text": f"{i}"}),
                {"Authorization": f"Bearer {TOKEN}"},
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 202
    finally:
        conn.close()
    elapsed = time.monotonic() - start
    assert len(received.messages) == 150
    assert elapsed < 3.0, f"150 keep-alive posts took {elapsed:.1f}s (Nagle stalls would take ~6 s)"


def test_client_that_hangs_up_mid_body_is_dropped_quietly(server: ListenServer, received: Received) -> None:
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 500\r\n\r\n"
        '{"conversation_id": "c", "te'
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
    assert health(server) == 200
    assert received.messages == []

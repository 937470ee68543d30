"""The local HTTP intake: other systems push customer messages with ``POST /v1/messages``.

A help-desk bridge, a chat widget's webhook or a shell script (``curl``) can feed the agent's inbox
without touching files.  It is deliberately small and strict because it listens on a socket:

* loopback only unless the caller passes ``allow_remote=True`` (the CLI does that only for an
  explicit non-loopback ``--listen`` host, with a warning);
* every ``POST`` needs ``Authorization: Bearer <token>`` (compared in constant time); the token comes
  from config or is generated with :func:`secrets.token_urlsafe` and shown to the user;
* the body size is checked from ``Content-Length`` *before* reading (413 when too big; 411 when the
  length is missing or the body is chunked), and slow clients time out;
* the JSON is validated with the same rules as the file sources (:func:`parse_message`), so every
  feed accepts exactly the same messages.

Responses are JSON.  ``POST /v1/messages`` -> 202 ``{"accepted": true, "id": "..."}``; errors are
``{"accepted": false, "error": "..."}`` with 400, 401, 404, 405, 411, 413 or 503 (the receiver
failed - retry).  ``GET /v1/health`` -> 200 ``{"ok": true}`` (no token needed, reveals nothing).

``on_message`` is called on the request's thread, concurrently for concurrent requests; it must be
thread-safe (``App.call_from_thread``/``post_message`` are).  The 202 is sent only after it returned,
so an accepted message has been handed over.  What a ``--listen`` value means (host, port, loopback)
is :mod:`csassist.core.io.listen_address`; the caps and the descriptor check are in :mod:`~csassist.core.io.limits`.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from csassist.core.errors import CsassistError
from csassist.core.io.deadline_io import DeadlineSocketIO
from csassist.core.io.limits import FD_RESERVE, MAX_CONNECTIONS, MAX_MESSAGE_BYTES, REQUEST_DEADLINE_S, fd_headroom
from csassist.core.io.listen_address import DEFAULT_HOST, address_family, is_loopback_host, parse_listen_address
from csassist.core.io.message_format import parse_message
from csassist.core.types import Message

#: A connector's webhook handler: ``(path, headers, body) -> (status, json_payload)``.
RouteHandler = Callable[[str, Mapping[str, str], bytes], tuple[int, dict[str, Any]]]

MESSAGES_PATH = "/v1/messages"
HEALTH_PATH = "/v1/health"
DEFAULT_MAX_BODY_BYTES = MAX_MESSAGE_BYTES
#: Seconds a client has for a whole request - request line, headers and body together - before the
#: connection is dropped.  A per-read timeout alone let a client send one byte every 5 s forever.
REQUEST_TIMEOUT_S = REQUEST_DEADLINE_S
#: Raw bytes answered to a connection refused because the intake is full (no handler thread is used).
_BUSY_BODY = b'{"accepted": false, "error": "too many connections; retry later"}'
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n".encode()
    + b"Retry-After: 1\r\nConnection: close\r\n\r\n"
    + _BUSY_BODY
)
#: Seconds between two "intake is full" reports (one per refused connection would flood the UI).
_BUSY_REPORT_EVERY_S = 10.0
#: At most this much of a refused body is read and discarded before closing (see ``_linger``).
_LINGER_MAX_BYTES = 4 << 20


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with the intake's settings attached and IPv6 support."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], intake: ListenServer) -> None:
        self.intake = intake
        self._slots = threading.BoundedSemaphore(intake.max_connections)
        self._last_busy_report = 0.0
        self.address_family = address_family(address[0])
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report instead of printing a traceback to stderr (which would garble the TUI)."""
        self.intake._report(f"listen: error while handling a request from {client_address[0]}")

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on a thread if a slot and enough file descriptors are free, else 503.

        Without a cap ~1,020 idle connections used up every descriptor: the webhook died and the app
        could no longer write its outbox.  Refusing costs no thread and frees the descriptor at once.
        """
        if not self._slots.acquire(blocking=False):
            self._refuse(request, "all connection slots are taken")
            return
        headroom = fd_headroom()
        if headroom is not None and headroom < self.intake.fd_reserve:
            self._slots.release()
            self._refuse(request, f"only {headroom} file descriptors left (reserve {self.intake.fd_reserve})")
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread could not start: give the slot back
            self._slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle the connection, then free its slot (whatever happened)."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket, why: str) -> None:
        """Answer 503 without reading (non-blocking, best effort) and close; report now and then.

        The report goes out before the answer: whoever sees the 503 (a sender, a test) can rely on the
        app having been told why (it was after it, and a loaded machine let the client win the race).
        """
        self.intake._count(503)
        now = time.monotonic()
        if now - self._last_busy_report >= _BUSY_REPORT_EVERY_S:
            self._last_busy_report = now
            self.intake._report(f"listen: refusing connections ({why})")
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(_BUSY_RESPONSE)
        self.shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP request; all state lives on the server's :class:`ListenServer`."""

    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client then waits for the
    # peer's delayed ACK (~40 ms) on every request, capping one connection at ~25 requests/s.
    disable_nagle_algorithm = True
    timeout = REQUEST_TIMEOUT_S
    server_version = "csassist-intake"
    sys_version = ""
    _ALLOWED: ClassVar[dict[str, str]] = {MESSAGES_PATH: "POST", HEALTH_PATH: "GET"}
    _body_read = False
    #: ``time.monotonic()`` by which the current request must have arrived completely.
    deadline = 0.0

    def setup(self) -> None:
        """Wrap the socket so every read counts against one deadline per request (see :mod:`~csassist.core.io.deadline_io`)."""
        super().setup()
        self.deadline = time.monotonic() + self.server.intake.request_deadline_s
        self.rfile = io.BufferedReader(DeadlineSocketIO(self.connection, self))

    def handle_one_request(self) -> None:
        """One request, with a fresh deadline that also bounds the idle wait of a keep-alive client."""
        self.deadline = time.monotonic() + self.server.intake.request_deadline_s
        super().handle_one_request()
        self.connection.settimeout(self.server.intake.request_deadline_s)  # for writing the next response

    # -- responses --------------------------------------------------------------------------------
    def _send_json(self, status: int, payload: dict[str, Any], *, close: bool = False, allow: str = "") -> None:
        body = json.dumps(payload).encode("utf-8")
        with contextlib.suppress(OSError):  # writing gets its own bound, not what is left of the deadline
            self.connection.settimeout(self.server.intake.request_deadline_s)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="csassist"')
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, why: str, **kwargs: Any) -> None:
        self.server.intake._count(status)
        self._send_json(status, {"accepted": False, "error": why}, **kwargs)
        if self.close_connection and self._has_body() and not self._body_read:
            self._linger()

    def _linger(self) -> None:
        """Drain (briefly) a body we refused to read before closing.

        Closing a socket with unread input makes the kernel send a reset, which can destroy our
        error response before the client reads it; so stop writing, discard what the client still
        sends for a short while, then close.
        """
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + 2.0
            drained = 0
            while time.monotonic() < deadline and drained < _LINGER_MAX_BYTES:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        """Silence the default stderr access log (the terminal belongs to the TUI)."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (bad request line, huge headers, unknown method) get a JSON answer and a close."""
        if code == 501:  # BaseHTTPRequestHandler's answer to a method without a do_* handler
            code, message = 405, "method not allowed"
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # garbage is parsed as HTTP/0.9, which has no status line
        with contextlib.suppress(Exception):
            self._error(code, message or "bad request", close=True)

    # -- routing ----------------------------------------------------------------------------------
    def _route(self) -> str | None:
        """The known path this request targets (query string ignored), after answering 404/405."""
        path = self.path.split("?", 1)[0]
        allowed = self._ALLOWED.get(path)
        if allowed is None and self.server.intake.route_handler(path) is not None:
            allowed = "POST"  # a connector's webhook (see ``ListenServer.routes``)
        if allowed is None:
            self._error(404, f"no such endpoint; use POST {MESSAGES_PATH}", close=self._has_body())
            return None
        if self.command != allowed:
            self._error(405, f"{path} accepts {allowed} only", close=self._has_body(), allow=allowed)
            return None
        return path

    def _has_body(self) -> bool:
        """Whether the request announced a body (which we may not have read)."""
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        return headers.get("Content-Length", "0").strip() not in ("", "0") or bool(headers.get("Transfer-Encoding"))

    def do_GET(self) -> None:
        """Health check."""
        if self._route() is None:
            return
        self.server.intake._count(200)
        self._send_json(200, {"ok": True})

    def do_POST(self) -> None:
        """Accept one customer message."""
        if self._route() is None:
            return
        intake = self.server.intake
        handler = intake.route_handler(self.path.split("?", 1)[0])
        if handler is None and not intake._authorized(self.headers.get("Authorization", "")):
            self._error(401, "missing or wrong bearer token", close=True)
            return
        if self.headers.get("Transfer-Encoding"):
            self._error(411, "chunked bodies are not accepted; send Content-Length", close=True)
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._error(411, "Content-Length is required", close=True)
            return
        try:
            length = int(length_text.strip())
            if length < 0:
                raise ValueError
        except ValueError:
            self._error(400, "invalid Content-Length", close=True)
            return
        if length > intake.max_body_bytes:
            self._error(413, f"body larger than {intake.max_body_bytes} bytes", close=True)
            return
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        self._body_read = True
        if len(body) < length:
            self._error(400, "body shorter than Content-Length", close=True)
            return
        if handler is not None:  # the connector authenticates and parses its own payloads
            try:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = handler(self.path.split("?", 1)[0], headers, body)
            except Exception as exc:
                intake._report(f"listen: webhook handler failed: {exc!r}")
                status, payload = 503, {"accepted": False, "error": "the app could not take the event; retry"}
            intake._count(status)
            self._send_json(status, payload)
            return
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            self._error(400, f"body is not valid UTF-8 JSON ({exc.__class__.__name__})")
            return
        except ValueError:  # an integer over Python's 4,300-digit limit dropped the connection unanswered
            self._error(400, "body holds a number too large to read")
            return
        try:
            message = parse_message(obj, allow_speaker=False, allow_delay=False, default_ts=time.time())
        except ValueError as exc:
            self._error(400, str(exc))
            return
        message_id = uuid.uuid4().hex
        try:
            intake.on_message(message)
        except Exception as exc:
            intake._report(f"listen: receiver failed on a message of {message.conversation_id}: {exc!r}")
            self._error(503, "the app could not take the message; retry")
            return
        intake._count(202)
        self._send_json(202, {"accepted": True, "id": message_id})

    def _method_not_allowed(self) -> None:
        self._route()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _method_not_allowed


class ListenServer:
    """``POST /v1/messages`` intake on a daemon thread; see the module docstring for the protocol.

    ``port=0`` picks a free port (read :attr:`url` after :meth:`start`).  Counters of answered
    statuses are kept in :attr:`stats` for the status bar and tests.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_message: Callable[[Message], None] | None = None,
        *,
        allow_remote: bool = False,
        on_problem: Callable[[str], None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        fd_reserve: int = FD_RESERVE,
        routes: dict[str, RouteHandler] | None = None,
    ) -> None:
        if max_connections < 1 or request_deadline_s <= 0 or fd_reserve < 0:
            raise CsassistError("listen: max_connections and request_deadline_s must be positive")
        if not is_loopback_host(host) and not allow_remote:
            raise CsassistError(
                f"refusing to listen on {host}: it is reachable from other machines; "
                "use 127.0.0.1 or pass an explicit non-loopback host to allow it"
            )
        if max_body_bytes < 1:
            raise CsassistError("listen: max_body_bytes must be positive")
        if on_message is None:
            raise CsassistError("listen: on_message is required")
        self.host = host
        self.port = port
        self.token = token.strip() if token and token.strip() else secrets.token_urlsafe(32)
        self.max_body_bytes = max_body_bytes
        self.on_message = on_message
        self.allow_remote = allow_remote
        self.max_connections = max_connections
        self.request_deadline_s = request_deadline_s
        self.fd_reserve = fd_reserve
        #: Extra ``POST`` endpoints by path prefix (a helpdesk's webhook, e.g. ``/v1/chatwoot/``): the
        #: handler gets ``(path, headers, body)`` after the size checks, authenticates the request
        #: itself (no bearer token: helpdesks sign instead) and returns ``(status, json_payload)``.
        self.routes = dict(routes or {})
        self._on_problem = on_problem
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._token_bytes = self.token.encode("utf-8")
        self._lock = threading.Lock()
        #: Count of responses per HTTP status since start.
        self.stats: dict[int, int] = {}

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> ListenServer:
        """Bind and serve in a daemon thread; ``CsassistError`` when the address is unusable."""
        if self._server is not None:
            raise RuntimeError("listen: already started")
        try:
            server = _Server((self.host, self.port), self)
        except OSError as exc:
            raise CsassistError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="csassist-listen", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ListenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- info -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def messages_url(self) -> str:
        """Where to POST messages."""
        return self.url + MESSAGES_PATH

    def curl_example(self) -> str:
        """A ready-to-paste command that posts a test message (shown at start)."""
        return (
            f"curl -sS -X POST {self.messages_url} -H 'Authorization: Bearer {self.token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"conversation_id": "c-1", "text": "Hello, where is my order?", "customer": "Ana"}\''
        )

    # -- used by the handler ----------------------------------------------------------------------
    def route_handler(self, path: str) -> RouteHandler | None:
        """The connector handler whose prefix ``path`` starts with, if any."""
        for prefix, handler in self.routes.items():
            if path.startswith(prefix) and len(path) > len(prefix):
                return handler
        return None

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            # still spend a comparison so timing does not reveal which check failed
            hmac.compare_digest(self._token_bytes, self._token_bytes)
            return False
        return hmac.compare_digest(value.strip().encode("utf-8"), self._token_bytes)

    def _count(self, status: int) -> None:
        with self._lock:
            self.stats[status] = self.stats.get(status, 0) + 1

    def _report(self, text: str) -> None:
        if self._on_problem is not None:
            with contextlib.suppress(Exception):
                self._on_problem(text)


def start_listen_server(
    address: str,
    *,
    on_message: Callable[[Message], None],
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    on_problem: Callable[[str], None] | None = None,
    routes: dict[str, RouteHandler] | None = None,
) -> ListenServer:
    """Start the intake for a ``--listen HOST:PORT`` value (the CLI/TUI entry point).

    Typing a non-loopback host on the command line is the explicit consent ``allow_remote`` asks
    for; it is still reported through ``on_problem`` as a warning, because the token is then the
    only thing between the network and the agent's inbox (and it travels in clear over http).
    """
    host, port = parse_listen_address(address)
    remote = not is_loopback_host(host)
    server = ListenServer(
        host,
        port,
        token=token,
        max_body_bytes=max_body_bytes,
        on_message=on_message,
        allow_remote=remote,
        on_problem=on_problem,
        routes=routes,
    ).start()
    if remote and on_problem is not None:
        with contextlib.suppress(Exception):
            on_problem(
                f"warning: listening on {host}:{server.port}, reachable from other machines; "
                "requests and the token travel unencrypted - prefer 127.0.0.1 behind a TLS proxy"
            )
    return server

"""A protocol-faithful local Chatwoot for tests: the REST calls csassist makes, plus fault injection.

Answers are built from the payload shapes in ``tests/fixtures/chatwoot`` (see its README), so the
connector is tested against the documented structure, not against what it happens to expect.
Faults: a wrong ``api_access_token`` gets 401; :meth:`FakeChatwoot.fail_next` answers the next N
requests with a status (429 with ``Retry-After``, 500...); :attr:`FakeChatwoot.down` drops every
connection without an answer (network loss) until cleared.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "chatwoot"


def fixture(name: str) -> dict[str, Any]:
    """One recorded payload shape."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeChatwoot:
    """One account (id 1) whose agent (token ``tok-agent``) is assigned some open conversations."""

    def __init__(self, account_id: int = 1, token: str = "tok-agent") -> None:
        self.account_id, self.token = account_id, token
        self.conversations: dict[int, list[dict[str, Any]]] = {}
        self.assigned: set[int] = set()
        self.posted: list[dict[str, Any]] = []  # every accepted POST .../messages body
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.down = False
        self._faults: list[tuple[int, str | None]] = []
        self._next_id = 5000
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    # -- test controls ----------------------------------------------------------------------------
    def add_conversation(self, conversation: int, assigned: bool = True) -> None:
        with self._lock:
            self.conversations.setdefault(conversation, [])
            if assigned:
                self.assigned.add(conversation)

    def add_message(self, conversation: int, content: str, *, incoming: bool = True, private: bool = False,
                    name: str = "Ana Lima") -> dict[str, Any]:
        """A message as the API stores it (incoming from the contact, or outgoing from an agent)."""
        message = fixture("api_message.json")
        with self._lock:
            self._next_id += 1
            message.update(id=self._next_id, content=content, conversation_id=conversation,
                           message_type=0 if incoming else 1, private=private, created_at=int(time.time()))
            if incoming:
                message["sender"]["name"] = name
            else:
                message["sender"] = {"id": 5, "name": "Sam Agent", "type": "user", "available_name": "Sam Agent"}
            self.conversations.setdefault(conversation, []).append(message)
        return copy.deepcopy(message)

    def webhook_event(self, message: dict[str, Any]) -> dict[str, Any]:
        """The ``message_created`` webhook Chatwoot would send for a stored message."""
        event = fixture("webhook_message_created.json")
        event.update(id=message["id"], content=message["content"], private=message["private"],
                     message_type={0: "incoming", 1: "outgoing"}[message["message_type"]],
                     created_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(message["created_at"])))
        event["sender"] = {**event["sender"], **message["sender"]}
        event["conversation"].update(id=message["conversation_id"], display_id=message["conversation_id"])
        event["account"]["id"] = self.account_id
        return event

    def fail_next(self, count: int, status: int, retry_after: str | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (and ``Retry-After``)."""
        with self._lock:
            self._faults.extend([(status, retry_after)] * count)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the protocol -----------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], token: str,
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            if self._faults:
                status, retry_after = self._faults.pop(0)
                return status, {"error": "injected"}, {"Retry-After": retry_after} if retry_after else {}
        if token != self.token:
            return 401, {"errors": ["You need to sign in or sign up before continuing."]}, {}
        prefix = f"/api/v1/accounts/{self.account_id}/conversations"
        if not path.startswith(prefix):
            return 404, {"error": "Resource could not be found"}, {}
        rest = path[len(prefix):].strip("/").split("/")
        if method == "GET" and rest == [""]:
            if query.get("assignee_type") != ["me"] or query.get("status") != ["open"]:
                return 400, {"error": "this fake only answers assignee_type=me&status=open"}, {}
            page = int(query.get("page", ["1"])[0])
            payload = []
            with self._lock:
                for cid in sorted(self.assigned)[(page - 1) * 25: page * 25]:
                    conv = fixture("api_conversation.json")
                    conv.update(id=cid, messages=copy.deepcopy(self.conversations[cid][-1:]))
                    payload.append(conv)
                mine = len(self.assigned)
            return 200, {"data": {"meta": {"mine_count": mine, "unassigned_count": 0, "all_count": mine},
                                  "payload": payload}}, {}
        if len(rest) == 2 and rest[0].isdigit() and rest[1] == "messages":
            cid = int(rest[0])
            with self._lock:
                if cid not in self.conversations:
                    return 404, {"error": "Resource could not be found"}, {}
                if method == "GET":
                    after = int(query["after"][0]) if "after" in query else None
                    rows = [copy.deepcopy(m) for m in self.conversations[cid] if after is None or m["id"] > after]
                    return 200, {"meta": {"labels": [], "additional_attributes": {}}, "payload": rows[-20:]}, {}
            if method == "POST":
                data = json.loads(body or b"{}")
                if not isinstance(data.get("content"), str) or data.get("message_type") != "outgoing":
                    return 422, {"error": "content and message_type outgoing are required"}, {}
                stored = self.add_message(cid, data["content"], incoming=False, private=bool(data.get("private")))
                with self._lock:
                    self.posted.append({"conversation": cid, **data})
                return 200, stored, {}
        return 404, {"error": "Resource could not be found"}, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if fake.down:  # network loss: no answer at all
                    self.close_connection = True
                    self.connection.close()
                    return
                parts = urlsplit(self.path)
                status, payload, headers = fake._route(self.command, parts.path, parse_qs(parts.query),
                                                       self.headers.get("api_access_token", ""), body)
                fake.requests.append((self.command, parts.path, status))
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _serve

        return Handler


def post_webhook(url: str, event: dict[str, Any], *, hmac_secret: str | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST a webhook event as Chatwoot does (signed when ``hmac_secret``); ``(status, json answer)``."""
    from csassist.core.io.chatwoot import sign

    body = json.dumps(event).encode()
    if hmac_secret is not None:
        headers = {**sign(hmac_secret, body, int(time.time())), **(headers or {})}
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")

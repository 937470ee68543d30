"""Chatwoot: customer messages in (polling the agent's conversations, or account webhooks), replies out.

`Chatwoot <https://www.chatwoot.com>`_ (MIT, self-hostable) is where many teams already answer
chats; csassist sits beside it on the agent's workstation and never auto-sends.

Intake, two ways (both can run at once; a message id is emitted once whichever way it came):

* **polling** with the agent's own API token - ``GET /api/v1/accounts/{a}/conversations?
  assignee_type=me&status=open`` every ``poll_interval_s``, then ``GET .../conversations/{c}/messages
  ?after={last id}`` for each.  This works on a workstation the helpdesk cannot reach (no inbound
  port).  Chatwoot's realtime websocket (ActionCable, ``/cable``) would cut the delay, but it needs a
  websocket client dependency and the per-user ``pubsub_token`` handshake, and polling a handful of
  assigned conversations every few seconds is cheap; so it is not used (yet).
* **account webhooks** on ``--listen``: Chatwoot POSTs ``message_created`` events to
  ``http://HOST:PORT/v1/chatwoot/{webhook_secret}``.  The secret in the URL is always required;
  when ``webhook_hmac_secret`` is set, ``X-Chatwoot-Signature: sha256=HEX`` (HMAC-SHA256 of
  ``"{X-Chatwoot-Timestamp}.{raw body}"``) must match and the timestamp be within 5 minutes.

Field mapping: ``conversation_id = "cw-{account.id}-{conversation.id}"`` (the id the API expects),
``customer = sender.name`` for contacts, ``text = content``, ``ts = created_at`` (the API gives epoch
seconds, webhooks ``"2020-03-03 13:05:57 UTC"`` or ISO-8601).  Incoming, non-private messages are
customer turns; outgoing, non-private ones are agent turns (an agent who answered in Chatwoot itself
closes that turn in csassist too); private notes, activity and template messages are skipped.

Out: a reply the agent sends (ctrl+s) is first written to the outbox (the durable record), then
:class:`ChatwootSender` posts it as the agent - ``POST .../conversations/{c}/messages`` with
``{"content", "message_type": "outgoing", "private": false}`` and the ``api_access_token`` header
- or as a private note for review in Chatwoot (``private: true``) when the agent chose that.  A
failed post is retried with backoff (a 429's ``Retry-After`` is honoured); replies still undelivered
when the app closes are found again in the outbox at the next start (a small ledger of delivered
outbox ids makes that idempotent), and before re-posting after an ambiguous failure the sender
checks whether the reply already reached the conversation, so a customer never gets it twice.

Other helpdesks map onto the same pieces (a poller emitting :class:`~csassist.core.types.Message`,
a webhook route, a sender keyed by ``conversation_id``):

* **Zammad** - poll ``GET /api/v1/tickets/search?query=owner.id:{me} AND state.name:open`` and
  ``GET /api/v1/ticket_articles/by_ticket/{id}`` (``sender`` = Customer/Agent, ``internal`` = private);
  webhooks via Triggers with an ``X-Hub-Signature`` HMAC-SHA1; reply with ``POST /api/v1/ticket_articles``
  (``internal: true`` for a note); id ``zm-{ticket id}``.
* **Zendesk** - ``GET /api/v2/search.json?query=type:ticket assignee:me status:open`` and
  ``GET /api/v2/tickets/{id}/comments`` (``public`` false = internal note); webhooks signed with
  ``X-Zendesk-Webhook-Signature`` (base64 HMAC-SHA256 of timestamp + body); reply with
  ``PUT /api/v2/tickets/{id}`` ``{"ticket": {"comment": {"body", "public"}}}``; id ``zd-{ticket id}``.
* **Freshdesk** - ``GET /api/v2/tickets?filter=...`` / ``GET /api/v2/tickets/{id}/conversations``
  (``incoming``, ``private``); no signed webhooks (automation rules with a secret header); reply with
  ``POST /api/v2/tickets/{id}/reply`` or ``/notes`` (private); 429 with ``Retry-After`` as here; id
  ``fd-{ticket id}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csassist.core.errors import CsassistError
from csassist.core.io.message_format import parse_timestamp
from csassist.core.io.outbox import append_line_durably, encode_json_line, read_outbox
from csassist.core.io.sources import ThreadedSource
from csassist.core.types import Message

WEBHOOK_PREFIX = "/v1/chatwoot/"
TOKEN_ENV = "CSASSIST_CHATWOOT_TOKEN"
#: Signed webhooks older or newer than this are refused (replay protection).
SIGNATURE_TOLERANCE_S = 300
#: Chatwoot's integer ``message_type`` in the REST API.
_API_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 60.0


class ChatwootError(CsassistError):
    """Chatwoot answered with an error we cannot retry past (bad request, not found)."""


class ChatwootAuthError(ChatwootError):
    """401/403: the API token is wrong, expired or lacks access (retrying will not help)."""


class ChatwootRetry(CsassistError):
    """A failure worth retrying: network loss, 5xx, or 429 (``retry_after`` seconds when given)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ChatwootConfig:
    """What the connector needs (from ``[chatwoot]`` in config.toml and the token)."""

    url: str
    account_id: int
    token: str
    poll_interval_s: float = 5.0
    private_notes: bool = False
    webhook_secret: str = ""
    webhook_hmac_secret: str = ""
    timeout_s: float = 10.0


def load_token(token_file: str = "", env: Mapping[str, str] | None = None) -> str:
    """The agent's API token: ``CSASSIST_CHATWOOT_TOKEN``, else the first line of ``token_file``.

    The file must be readable by its owner only (0600, like ``~/.pgpass``): a token readable by
    other accounts would let them post as the agent, so a wider file is refused, not used.
    """
    env = os.environ if env is None else env
    token = (env.get(TOKEN_ENV) or "").strip()
    if token:
        return token
    if not token_file:
        raise CsassistError(f"Chatwoot: set {TOKEN_ENV} or [chatwoot] token_file (a 0600 file holding the token)")
    path = Path(token_file).expanduser()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise CsassistError(f"Chatwoot: {path} is readable by others (mode {mode:o}); chmod 600 it")
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        token = lines[0].strip() if lines else ""
    except OSError as exc:
        raise CsassistError(f"Chatwoot: cannot read the token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise CsassistError(f"Chatwoot: the token file {path} is empty")
    return token


# --------------------------------------------------------------------------------------------------
# Field mapping
# --------------------------------------------------------------------------------------------------


def conversation_key(account_id: int | str, conversation_id: int | str) -> str:
    """``cw-{account}-{conversation}``: csassist's id for a Chatwoot conversation."""
    return f"cw-{account_id}-{conversation_id}"


def parse_key(conversation_id: str) -> tuple[int, int] | None:
    """``(account, conversation)`` from a ``cw-A-C`` id; ``None`` for ids of other feeds."""
    parts = conversation_id.split("-")
    if len(parts) != 3 or parts[0] != "cw" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def chatwoot_time(value: object) -> float:
    """Epoch seconds from the API's integers or a webhook's ``"2020-03-03 13:05:57 UTC"`` / ISO text."""
    if isinstance(value, str) and value.strip().endswith(" UTC"):
        value = value.strip()[: -len(" UTC")].replace(" ", "T") + "+00:00"
    return parse_timestamp(value)


def to_message(account_id: int, conversation_id: int, raw: Mapping[str, Any]) -> Message | None:
    """A Chatwoot message (API or webhook shape) as a csassist :class:`Message`, or ``None`` to skip it."""
    kind = raw.get("message_type")
    kind = _API_TYPES.get(kind, "") if isinstance(kind, int) and not isinstance(kind, bool) else kind
    if kind not in ("incoming", "outgoing") or raw.get("private") is True:
        return None
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        return None  # attachments only, or an empty event
    sender = raw.get("sender") if isinstance(raw.get("sender"), Mapping) else {}
    customer = None
    if kind == "incoming":
        name = sender.get("name") if sender else None
        customer = name if isinstance(name, str) and name.strip() else None
    try:
        ts = chatwoot_time(raw.get("created_at")) if raw.get("created_at") is not None else time.time()
    except ValueError:
        ts = time.time()
    return Message(conversation_key(account_id, conversation_id), "customer" if kind == "incoming" else "agent",
                   content, ts=ts, customer=customer)


# --------------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would drop the token header or turn a POST into a GET: treat it as an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ChatwootClient:
    """The few Chatwoot REST calls csassist makes, with errors sorted into retry / do not retry."""

    def __init__(self, config: ChatwootConfig) -> None:
        parsed = urllib.parse.urlsplit(config.url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CsassistError(f"[chatwoot] url must be http(s)://HOST, got {config.url!r}")
        if config.account_id <= 0:
            raise CsassistError("[chatwoot] account_id must be the positive number in your Chatwoot URLs")
        self.config = config
        self.base = config.url.rstrip("/") + f"/api/v1/accounts/{config.account_id}"
        self._opener = urllib.request.build_opener(_NoRedirect())

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> Any:
        """One call; the decoded JSON answer, or ``ChatwootAuthError``/``ChatwootRetry``/``ChatwootError``."""
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("api_access_token", self.config.token)
        req.add_header("Accept", "application/json")
        req.add_header("User-Agent", "csassist")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(req, timeout=self.config.timeout_s) as response:
                raw = response.read(8 << 20)
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status in (401, 403):
                raise ChatwootAuthError(f"Chatwoot refused the API token (HTTP {status}); check [chatwoot] token") from None
            if status == 429 or status >= 500:
                raise ChatwootRetry(f"Chatwoot HTTP {status}", _retry_after(exc.headers.get("Retry-After"))) from None
            raise ChatwootError(f"Chatwoot HTTP {status} for {method} {path}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ChatwootRetry(f"Chatwoot unreachable ({reason})") from None
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError):
            raise ChatwootRetry("Chatwoot sent an unreadable answer") from None

    def assigned_conversations(self) -> list[dict[str, Any]]:
        """The open conversations assigned to the token's agent (every page)."""
        found: list[dict[str, Any]] = []
        for page in range(1, 51):
            answer = self.request("GET", "/conversations", {"assignee_type": "me", "status": "open", "page": page})
            data = answer.get("data", answer) if isinstance(answer, dict) else {}
            batch = data.get("payload", []) if isinstance(data, dict) else []
            found.extend(c for c in batch if isinstance(c, dict) and isinstance(c.get("id"), int))
            if len(batch) < 25:  # Chatwoot's page size
                break
        return found

    def messages(self, conversation: int, after: int | None = None) -> list[dict[str, Any]]:
        """Messages of one conversation, oldest first (only those after message id ``after``)."""
        answer = self.request("GET", f"/conversations/{conversation}/messages",
                              {"after": after} if after is not None else None)
        batch = answer.get("payload", []) if isinstance(answer, dict) else []
        rows = [m for m in batch if isinstance(m, dict) and isinstance(m.get("id"), int)]
        return sorted(rows, key=lambda m: int(m["id"]))

    def post_message(self, conversation: int, content: str, *, private: bool) -> dict[str, Any]:
        """Post as the agent (``private``: as a note only agents see)."""
        answer = self.request("POST", f"/conversations/{conversation}/messages",
                              body={"content": content, "message_type": "outgoing", "private": private})
        return answer if isinstance(answer, dict) else {}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number; an HTTP date is read as "a minute")."""
    if not value:
        return None
    try:
        return max(0.0, min(float(value.strip()), 3600.0))
    except ValueError:
        return 60.0


# --------------------------------------------------------------------------------------------------
# The connector: shared de-duplication for polling + webhooks, and the sender
# --------------------------------------------------------------------------------------------------


class _Seen:
    """Message ids already emitted (bounded), shared by the poller, the webhook and the sender."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: set[tuple[int, int]] = set()
        self._order: deque[tuple[int, int]] = deque()
        self._limit = limit
        self._lock = threading.Lock()

    def first_time(self, account: int, message_id: int) -> bool:
        """Record the id; ``True`` only the first time it is seen."""
        key = (account, message_id)
        with self._lock:
            if key in self._ids:
                return False
            self._ids.add(key)
            self._order.append(key)
            if len(self._order) > self._limit:
                self._ids.discard(self._order.popleft())
            return True


class ChatwootConnector:
    """Everything Chatwoot for one app: the poller (a source), the webhook route and the sender."""

    def __init__(self, config: ChatwootConfig, *, ledger: Path, outbox_path: Path | None = None,
                 on_problem: Callable[[str], None] | None = None, client: ChatwootClient | None = None) -> None:
        self.config = config
        self.outbox_path = outbox_path
        self.client = client or ChatwootClient(config)
        self.seen = _Seen()
        self._on_problem = on_problem
        self._emit: Callable[[Message], None] | None = None
        self._own: dict[int, deque[str]] = {}  # conversation -> contents we just posted (echo filter)
        self._own_lock = threading.Lock()
        self.poller = ChatwootPoller(self, on_problem=on_problem)
        self.sender = ChatwootSender(self, ledger=ledger)

    # -- intake shared by both ways ---------------------------------------------------------------
    def attach(self, emit: Callable[[Message], None]) -> None:
        """Where messages go (the app's thread-safe ``ingest``)."""
        self._emit = emit

    def accept(self, account: int, conversation: int, raw: Mapping[str, Any]) -> bool:
        """Emit one Chatwoot message unless already seen, skipped by mapping, or our own echo."""
        message_id = raw.get("id")
        if isinstance(message_id, str) and message_id.isdigit():
            message_id = int(message_id)
        if not isinstance(message_id, int) or not self.seen.first_time(account, message_id):
            return False
        message = to_message(account, conversation, raw)
        if message is None or self._emit is None:
            return False
        if message.speaker == "agent" and self._is_own_echo(conversation, message.text):
            return False
        self._emit(message)
        return True

    def remember_own(self, conversation: int, content: str) -> None:
        """A reply we are posting: when it comes back through polling or a webhook, it is not news."""
        with self._own_lock:
            self._own.setdefault(conversation, deque(maxlen=20)).append(content.strip())

    def _is_own_echo(self, conversation: int, content: str) -> bool:
        with self._own_lock:
            own = self._own.get(conversation)
            if own and content.strip() in own:
                own.remove(content.strip())
                return True
        return False

    def problem(self, text: str) -> None:
        """Report to the app (never raises)."""
        if self._on_problem is not None:
            with contextlib.suppress(Exception):
                self._on_problem(text)

    # -- webhooks ---------------------------------------------------------------------------------
    def webhook(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /v1/chatwoot/{secret}``: authenticate, then take a ``message_created`` event."""
        secret = path[len(WEBHOOK_PREFIX):]
        if not self.config.webhook_secret or not hmac.compare_digest(secret.encode(), self.config.webhook_secret.encode()):
            return 401, {"accepted": False, "error": "wrong webhook secret in the URL"}
        if self.config.webhook_hmac_secret:
            problem = verify_signature(self.config.webhook_hmac_secret, headers, body)
            if problem:
                return 401, {"accepted": False, "error": problem}
        try:
            event = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return 400, {"accepted": False, "error": "body is not UTF-8 JSON"}
        if not isinstance(event, dict):
            return 400, {"accepted": False, "error": "body is not a JSON object"}
        if event.get("event") != "message_created":
            return 200, {"accepted": False, "ignored": f"event {str(event.get('event'))[:40]!r}"}
        account = _int(_get(event, "account", "id"))
        conversation = _int(_get(event, "conversation", "display_id")) or _int(_get(event, "conversation", "id"))
        if account is None or conversation is None:
            return 400, {"accepted": False, "error": "message_created without account.id / conversation.id"}
        if account != self.config.account_id:
            return 403, {"accepted": False, "error": f"account {account} is not this agent's account"}
        taken = self.accept(account, conversation, event)
        return 200, {"accepted": taken}


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str | None:
    """Why a signed webhook is refused (``None`` when the signature is right and fresh)."""
    signature = (headers.get("x-chatwoot-signature") or "").strip()
    timestamp = (headers.get("x-chatwoot-timestamp") or "").strip()
    if not signature or not timestamp:
        return "missing X-Chatwoot-Signature / X-Chatwoot-Timestamp"
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > SIGNATURE_TOLERANCE_S:
        return "stale or invalid X-Chatwoot-Timestamp"
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    given = signature.removeprefix("sha256=")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return "X-Chatwoot-Signature does not match"
    return None


def sign(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers Chatwoot sends for ``body`` (tests and ``curl`` examples use it)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Chatwoot-Signature": f"sha256={digest}", "X-Chatwoot-Timestamp": str(timestamp)}


def _get(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)  # type: ignore[assignment]
    return obj


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


# --------------------------------------------------------------------------------------------------
# Polling
# --------------------------------------------------------------------------------------------------


class ChatwootPoller(ThreadedSource):
    """Follow the agent's assigned open conversations by polling (see module docstring)."""

    def __init__(self, connector: ChatwootConnector, on_problem: Callable[[str], None] | None = None) -> None:
        super().__init__(on_problem=on_problem)
        self.connector = connector
        self.description = f"chatwoot {connector.config.url}"
        self._last: dict[int, int] = {}  # conversation -> newest message id seen
        #: Completed polling rounds (tests wait on it).
        self.rounds = 0

    def start(self, emit: Callable[[Message], None]) -> None:
        """Attach the app and start polling (the sender starts with it)."""
        self.connector.attach(emit)
        self.connector.sender.start(self.connector.outbox_path)
        super().start(emit)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling and the sender."""
        super().stop(timeout)
        self.connector.sender.stop()

    def poll_once(self) -> int:
        """One round: list assigned conversations, fetch what is new; how many messages were emitted."""
        client, account = self.connector.client, self.connector.config.account_id
        emitted = 0
        for conversation in client.assigned_conversations():
            cid = int(conversation["id"])
            for raw in client.messages(cid, self._last.get(cid)):
                self._last[cid] = max(self._last.get(cid, 0), int(raw["id"]))
                emitted += self.connector.accept(account, cid, raw)
        self.rounds += 1
        return emitted

    def _run(self) -> None:
        backoff = _BACKOFF_FIRST_S
        down = False
        while not self.stopping:
            try:
                self.poll_once()
            except ChatwootAuthError as exc:
                self._problem(f"{exc}; polling paused for 5 minutes")
                self._stop_event.wait(300)
                continue
            except ChatwootRetry as exc:
                if not down:
                    self._problem(f"{exc}; retrying (messages are not lost: the next poll fetches them)")
                    down = True
                self._stop_event.wait(exc.retry_after if exc.retry_after is not None else backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except ChatwootError as exc:
                self._problem(str(exc))
            if down:
                self._problem("Chatwoot reachable again")
                down = False
            backoff = _BACKOFF_FIRST_S
            self._stop_event.wait(self.connector.config.poll_interval_s)


# --------------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------------


class ChatwootSender:
    """Post sent replies to Chatwoot from a thread, retrying until delivered (see module docstring).

    :meth:`submit` takes an outbox record *after* the outbox made it durable; delivered outbox ids
    are appended to ``ledger`` (fsynced), so :meth:`start` can find replies a previous run did not
    deliver and post them, without ever posting one twice.
    """

    def __init__(self, connector: ChatwootConnector, *, ledger: Path) -> None:
        self.connector = connector
        self.ledger = Path(ledger)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._delivered = {str(r.get("id")) for r in read_outbox(self.ledger)}
        self._idle = threading.Condition()
        self._pending = 0
        #: Replies posted, attempts that failed, and the last failure (status bar, tests).
        self.posted = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self, outbox_path: Path | None = None) -> None:
        """Start the thread; re-queue replies of ``outbox_path`` that never reached Chatwoot."""
        if self._thread is not None:
            return
        if outbox_path is not None:
            for record in read_outbox(outbox_path):
                if parse_key(str(record.get("conversation_id", ""))) and str(record.get("id")) not in self._delivered:
                    self.submit({**record, "_resend": True})
        self._thread = threading.Thread(target=self._loop, name="csassist-chatwoot-send", daemon=True)
        self._thread.start()

    def submit(self, record: Mapping[str, Any]) -> None:
        """Queue one outbox record for posting (ids of other feeds are ignored)."""
        key = parse_key(str(record.get("conversation_id", "")))
        if key is None or str(record.get("id")) in self._delivered:
            return
        if key[0] != self.connector.config.account_id:
            self.connector.problem(f"reply for {record.get('conversation_id')} is for another Chatwoot account; kept in the outbox")
            return
        self.connector.remember_own(key[1], str(record.get("text", "")))
        with self._idle:
            self._pending += 1
        self._queue.put(dict(record))

    def _loop(self) -> None:
        while not self._stop.is_set():
            record = self._queue.get()
            if record is None:
                return
            try:
                self._deliver(record)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, record: dict[str, Any]) -> None:
        """Post until it worked, the agent's token is refused, or the app stops (then: next start)."""
        key = parse_key(str(record["conversation_id"]))
        assert key is not None
        conversation, text = key[1], str(record["text"])
        private = bool(record.get("private", self.connector.config.private_notes))
        ambiguous = bool(record.get("_resend"))
        backoff = _BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                if ambiguous and self._already_there(conversation, text, private, float(record.get("ts") or 0)):
                    self._mark_delivered(record)
                    return
                self.connector.client.post_message(conversation, text, private=private)
            except ChatwootRetry as exc:
                self._failed(record, str(exc))
                ambiguous = True  # the post may have arrived before the connection broke
                self._stop.wait(exc.retry_after if exc.retry_after is not None else backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except ChatwootError as exc:  # 401/403/404...: retrying will not help; kept in the outbox
                self._failed(record, str(exc))
                self.connector.problem(f"reply to {record['conversation_id']} not posted to Chatwoot ({exc}); "
                                       "it stays in the outbox and is retried at the next start")
                return
            self._mark_delivered(record)
            return

    def _already_there(self, conversation: int, text: str, private: bool, since: float) -> bool:
        """Whether an outgoing message with this text was posted after ``since`` (idempotent retry)."""
        for raw in self.connector.client.messages(conversation):
            if raw.get("content") == text and raw.get("message_type") in (1, "outgoing") \
                    and bool(raw.get("private")) == private:
                try:
                    if chatwoot_time(raw.get("created_at")) >= since - 5:
                        return True
                except ValueError:
                    return True
        return False

    def _mark_delivered(self, record: dict[str, Any]) -> None:
        self._delivered.add(str(record["id"]))
        try:
            append_line_durably(self.ledger, encode_json_line({"id": str(record["id"]), "at": time.time()}))
        except OSError as exc:
            self.connector.problem(f"{self.ledger}: cannot record a delivered reply ({exc})")
        self.posted += 1

    def _failed(self, record: Mapping[str, Any], why: str) -> None:
        self.failures += 1
        if self.last_error is None or self.failures == 1:
            self.connector.problem(f"posting a reply to {record['conversation_id']} failed ({why}); retrying")
        self.last_error = why

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued reply was posted or given up on; ``True`` when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the reply in flight; the rest is re-sent from the outbox at the next start."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

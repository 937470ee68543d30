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

Where the pieces live: this module is intake (the connector, polling, webhooks);
:mod:`csassist.core.io.chatwoot_api` holds the REST client, its errors, the config and the field
mapping; :mod:`csassist.core.io.chatwoot_sender` posts replies; :mod:`csassist.core.io.delivery_ledger`
remembers which ones arrived.

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
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from csassist.core.errors import CsassistError
from csassist.core.io.chatwoot_api import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    ChatwootAuthError,
    ChatwootClient,
    ChatwootConfig,
    ChatwootError,
    ChatwootRetry,
    to_message,
)
from csassist.core.io.chatwoot_sender import ChatwootSender
from csassist.core.io.sources import ThreadedSource
from csassist.core.types import Message

WEBHOOK_PREFIX = "/v1/chatwoot/"
TOKEN_ENV = "CSASSIST_CHATWOOT_TOKEN"
#: Signed webhooks older or newer than this are refused (replay protection).
SIGNATURE_TOLERANCE_S = 300


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
# The connector: shared de-duplication for polling + webhooks; it owns the sender (chatwoot_sender)
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
        backoff = BACKOFF_FIRST_S
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
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            except ChatwootError as exc:
                self._problem(str(exc))
            if down:
                self._problem("Chatwoot reachable again")
                down = False
            backoff = BACKOFF_FIRST_S
            self._stop_event.wait(self.connector.config.poll_interval_s)


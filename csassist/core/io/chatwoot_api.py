"""Chatwoot's REST API as csassist uses it: the client, its errors, the connector's config, the field mapping.

Why a module of its own: the intake side (polling, webhooks: :mod:`csassist.core.io.chatwoot`) and the
delivery side (:mod:`csassist.core.io.chatwoot_sender`) both speak to the same API and read the same
message shapes; keeping the HTTP details (no redirects, errors sorted into retry / do not retry,
``Retry-After``) and the mapping to :class:`~csassist.core.types.Message` in one place means both
sides treat a failure and a message alike, and neither imports the other.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csassist.core.errors import CsassistError
from csassist.core.io.message_format import parse_timestamp
from csassist.core.types import Message

#: Chatwoot's integer ``message_type`` in the REST API.
_API_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
#: Retry backoff after a failed call (doubling up to the maximum), shared by polling and sending.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 60.0


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



"""The ``server`` backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint, streamed.

Why: a team shares one GPU server (vLLM, llama.cpp server, Ollama) when laptops are too slow for a
bigger model.  Only the standard library is used (``http.client``), so this backend adds no
dependency and works wherever Python does.

Protocol: POST ``{base_url}/chat/completions`` with ``"stream": true``; the reply is Server-Sent
Events, one ``data: {json}`` line per chunk holding ``choices[0].delta.content``, ending with
``data: [DONE]``.  Every failure (connection refused, timeout, HTTP error, malformed event) becomes
a :class:`BackendError` whose message names the URL, so the pipeline can show it on the slot and
keep the extractive suggestion.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from csassist.core.errors import BackendError
from csassist.core.types import CancelToken
from csassist.settings import GenerationSettings


class ServerGenerator:
    """Streams chat completions from an OpenAI-compatible server."""

    backend = "server"

    def __init__(self, base_url: str, model: str = "", api_key: str = "", timeout_s: float = 30.0) -> None:
        if not base_url.strip():
            raise BackendError(
                "the server backend needs a URL: set [generation] server_url in config.toml or CSASSIST_SERVER_URL "
                "(e.g. http://127.0.0.1:8080/v1)"
            )
        parts = urlsplit(base_url.strip().rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"server URL {base_url!r} must look like http://host:port/v1")
        self.base_url = base_url.strip().rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "") + "/chat/completions"
        self.model = model
        self.model_id = f"{model or 'default'}@{self._host}:{self._port or ''}".rstrip(":")
        self.device = self.base_url
        self._api_key = api_key
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, gen: GenerationSettings) -> ServerGenerator:
        """Build from ``[generation]`` settings (URL/key already overridden by the environment)."""
        return cls(gen.server_url, gen.server_model, gen.server_api_key, gen.server_timeout_s)

    def _connection(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
        cancel: CancelToken,
    ) -> Iterator[str]:
        """POST the chat and yield ``delta.content`` pieces; cancel closes the connection at the next event."""
        body: dict[str, Any] = {
            "messages": messages,
            "stream": True,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        if self.model:
            body["model"] = self.model
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        url = f"{self.base_url}/chat/completions"
        conn = self._connection()
        try:
            try:
                conn.request("POST", self._path, body=json.dumps(body).encode("utf-8"), headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise BackendError(f"cannot reach the generation server at {url}: {_why(exc)}") from exc
            if response.status != 200:
                detail = response.read(500).decode("utf-8", "replace").strip()
                raise BackendError(f"generation server {url} answered HTTP {response.status}: {detail[:300]}")
            yield from self._events(response, url, cancel)
        finally:
            conn.close()

    def _events(self, response: http.client.HTTPResponse, url: str, cancel: CancelToken) -> Iterator[str]:
        """Parse the SSE stream line by line."""
        while not cancel.cancelled:
            try:
                raw = response.readline()
            except (OSError, http.client.HTTPException) as exc:
                raise BackendError(f"generation server {url} stopped responding: {_why(exc)}") from exc
            if not raw:
                return  # connection closed without [DONE]: keep what arrived
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue  # blank separators, comments (": ping"), event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except json.JSONDecodeError as exc:
                raise BackendError(f"generation server {url} sent a malformed event: {data[:120]!r}") from exc
            if isinstance(event, dict) and "error" in event:
                raise BackendError(f"generation server {url} reported an error: {event['error']}")
            for choice in event.get("choices", []) if isinstance(event, dict) else []:
                delta = choice.get("delta") or {}
                piece = delta.get("content")
                if isinstance(piece, str) and piece:
                    yield piece


def _why(exc: BaseException) -> str:
    """Short human reason for a network failure."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    return f"{type(exc).__name__}: {exc}"

"""The ``server`` backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint, streamed.

Why: a team shares one GPU server (vLLM, llama.cpp server, Ollama) when laptops are too slow for a
bigger model.  Only the standard library is used (``http.client``), so this backend adds no
dependency and works wherever Python does.

Protocol: POST ``{base_url}/chat/completions`` with ``"stream": true``; the reply is Server-Sent
Events, one ``data: {json}`` line per chunk holding ``choices[0].delta.content``, ending with
``data: [DONE]``.  Every failure (connection refused, timeout, HTTP error, malformed event) becomes
a :class:`BackendError` whose message names the URL, so the pipeline can show it on the slot and
keep the extractive suggestion.

Flavours and their documented quirks (README "Bigger models" has the recipes):

* llama.cpp ``llama-server`` / ``python -m llama_cpp.server``: one loaded model, listed in
  ``/v1/models`` (``owned_by: "llamacpp"``) under its path or ``--alias``; the request's ``model`` is
  not checked.  llama-cpp-python's SSE uses ``\r\n`` line ends.  401 with ``--api-key``.
* Ollama ``/v1``: ``model`` is required and must be pulled (404 "model ... not found, try pulling it
  first"); a name without a tag means ``:latest``.  ``/api/tags`` lists the pulled models too.
* vLLM: 404 "The model `x` does not exist." for an unknown name; LoRA modules served with
  ``--lora-modules name=path`` appear in ``/v1/models`` with ``parent`` = the base model.

A stream that ends without ``[DONE]`` and without a ``finish_reason`` was cut off (server crash,
proxy timeout): that is an error, not a shorter draft.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
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
                raise BackendError(f"cannot reach the generation server at {url}: {_why(exc, self.timeout_s)}") from exc
            if response.status != 200:
                raise self._http_error(response.status, _error_detail(response.read(2000)), url)
            yield from self._events(response, url, cancel)
        finally:
            conn.close()

    def _http_error(self, status: int, detail: str, url: str) -> BackendError:
        """A non-200 answer as an error the agent can act on (key, model name, URL)."""
        if status in (401, 403):
            fix = (
                "the key in CSASSIST_SERVER_KEY / [generation] server_api_key was refused"
                if self._api_key
                else "the server wants an API key: set CSASSIST_SERVER_KEY (or [generation] server_api_key)"
            )
            return BackendError(f"generation server {url} answered HTTP {status} (unauthorised): {fix}; {detail}")
        if status == 404 or (status == 400 and "model" in detail.lower()):
            return BackendError(self._model_problem(status, detail, url))
        return BackendError(f"generation server {url} answered HTTP {status}: {detail}")

    def _model_problem(self, status: int, detail: str, url: str) -> str:
        """Name the model asked for and what the server offers (a second, best-effort request)."""
        try:
            offered = self.list_models()
            offers = "it offers: " + (", ".join(offered.ids()) or "no models")
        except BackendError as exc:
            offers = f"the model list is unavailable too ({exc})"
        if status == 404 and "model" not in detail.lower():
            return (
                f"generation server {url} answered HTTP 404 ({detail}): no chat endpoint there; does server_url "
                f"end in /v1 (e.g. http://127.0.0.1:11434/v1)? {offers}"
            )
        asked = repr(self.model) if self.model else "(no model named: set [generation] server_model)"
        return (
            f"generation server {url} has no model {asked} (HTTP {status}: {detail}); {offers}; "
            "set [generation] server_model or CSASSIST_SERVER_MODEL to one of them"
        )

    def list_models(self) -> ServerModels:
        """``GET {base_url}/models`` (OpenAI format); Ollama's ``/api/tags`` when that is missing.

        Raises :class:`BackendError` naming the URL when the server is unreachable, refuses the key or
        answers something that is not a model list.
        """
        url = f"{self.base_url}/models"
        status, body = self._get(self._path.removesuffix("/chat/completions") + "/models", url)
        if status == 404:
            root = self._path.removesuffix("/chat/completions").removesuffix("/v1")
            tags_status, tags_body = self._get(root + "/api/tags", url)
            if tags_status == 200:
                return _parse_ollama_tags(tags_body, self.base_url)
        if status in (401, 403):
            raise self._http_error(status, _error_detail(body), url)
        if status != 200:
            raise BackendError(f"generation server {url} answered HTTP {status}: {_error_detail(body)}")
        return _parse_openai_models(body, self.base_url, url)

    def _get(self, path: str, url: str) -> tuple[int, bytes]:
        """One GET with the key; network failures become :class:`BackendError`."""
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        conn = self._connection()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read(1_000_000)
        except (OSError, http.client.HTTPException) as exc:
            raise BackendError(f"cannot reach the generation server at {url}: {_why(exc, self.timeout_s)}") from exc
        finally:
            conn.close()

    def _events(self, response: http.client.HTTPResponse, url: str, cancel: CancelToken) -> Iterator[str]:
        """Parse the SSE stream line by line; a stream cut off before its end is an error."""
        finished = False  # a finish_reason was seen: the reply is complete even without [DONE]
        pieces = 0
        while not cancel.cancelled:
            try:
                raw = response.readline()
            except (OSError, http.client.HTTPException) as exc:
                raise BackendError(
                    f"generation server {url} stopped responding after {pieces} pieces: {_why(exc, self.timeout_s)}"
                ) from exc
            if not raw:
                if finished:
                    return
                raise BackendError(
                    f"generation server {url} closed the stream mid-reply after {pieces} pieces "
                    "(no finish_reason, no [DONE]); the partial draft was dropped"
                )
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
                if not isinstance(choice, dict):
                    continue
                if choice.get("finish_reason"):
                    finished = True
                delta = choice.get("delta") or {}
                piece = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(piece, str) and piece:
                    pieces += 1
                    yield piece


@dataclass(frozen=True)
class ServerModel:
    """One entry of the server's model list; ``parent`` is the base model of a vLLM LoRA module."""

    id: str
    owned_by: str = ""
    parent: str | None = None


@dataclass(frozen=True)
class ServerModels:
    """What an OpenAI-compatible server offers, and which endpoint said so."""

    base_url: str
    models: tuple[ServerModel, ...]
    endpoint: str  # "/v1/models" | "/api/tags"

    def ids(self) -> list[str]:
        """The model names a request may use."""
        return [m.id for m in self.models]

    @property
    def flavour(self) -> str:
        """Best guess at the server software, from the documented ``owned_by`` values."""
        owners = {m.owned_by for m in self.models}
        if self.endpoint == "/api/tags" or owners & {"library", "ollama"}:
            return "ollama"
        if "llamacpp" in owners:
            return "llama.cpp"
        if "vllm" in owners:
            return "vllm"
        return "openai-compatible"

    def status_of(self, model: str) -> str:
        """``present``, ``missing`` or ``unset`` for the configured ``server_model``.

        Ollama resolves a name without a tag to ``:latest``, so ``qwen2.5`` matches ``qwen2.5:latest``.
        """
        if not model.strip():
            return "unset"
        ids = set(self.ids())
        if model in ids or (":" not in model and f"{model}:latest" in ids):
            return "present"
        return "missing"

    def note_for(self, model: str) -> str | None:
        """What the status means for this flavour, when it is not the obvious."""
        status = self.status_of(model)
        if self.flavour == "llama.cpp" and len(self.models) == 1 and status != "present":
            return f"llama.cpp answers every request with its one model ({self.models[0].id}) whatever name is asked"
        if status == "unset" and self.flavour in ("ollama", "vllm"):
            return f"{self.flavour} needs a model name: set [generation] server_model to one of the ids above"
        if status == "missing":
            return f"requests for {model!r} will fail (HTTP 404): set [generation] server_model to one of the ids above"
        return None


def _parse_openai_models(body: bytes, base_url: str, url: str) -> ServerModels:
    """``{"object": "list", "data": [{"id": ..., "owned_by": ..., "parent": ...}]}``."""
    try:
        payload = json.loads(body)
        entries = payload["data"]
        if not isinstance(entries, list):
            raise TypeError("data is not a list")
        models = tuple(
            ServerModel(
                id=str(e["id"]),
                owned_by=str(e.get("owned_by") or ""),
                parent=str(e["parent"]) if e.get("parent") else None,
            )
            for e in entries
            if isinstance(e, dict) and e.get("id")
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"generation server {url} did not answer an OpenAI model list: {body[:120]!r}") from exc
    return ServerModels(base_url, models, "/v1/models")


def _parse_ollama_tags(body: bytes, base_url: str) -> ServerModels:
    """Ollama's native ``{"models": [{"name": "qwen2.5:1.5b-instruct", ...}]}`` (older servers lack /v1/models)."""
    try:
        entries = json.loads(body)["models"]
        models = tuple(
            ServerModel(id=str(e.get("name") or e.get("model")), owned_by="ollama")
            for e in entries
            if isinstance(e, dict) and (e.get("name") or e.get("model"))
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackendError(f"generation server {base_url}: /api/tags is not an Ollama model list") from exc
    return ServerModels(base_url, models, "/api/tags")


def _error_detail(body: bytes) -> str:
    """The human part of an error body: ``error.message`` (llama.cpp, Ollama, OpenAI), ``message``
    (vLLM), ``detail`` (FastAPI: llama-cpp-python), a plain ``error`` string, else the text itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:300] or "(empty body)"
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("message", "detail", "error"):
            if isinstance(payload.get(key), str) and payload[key]:
                return str(payload[key])[:300]
    return text[:300]


def _why(exc: BaseException, timeout_s: float | None = None) -> str:
    """Short human reason for a network failure."""
    if isinstance(exc, socket.timeout | TimeoutError):
        if timeout_s is None:
            return "timed out"
        return (
            f"timed out: no answer within {timeout_s:g} s (raise [generation] server_timeout_s if the "
            "server is slow to start a reply, e.g. a big model on CPU)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    return f"{type(exc).__name__}: {exc}"

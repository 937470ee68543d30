"""Protocol-faithful fakes of the OpenAI-compatible servers csassist's ``server`` backend talks to.

Each flavour answers the way its documentation and source describe (shapes of ``/v1/models``, of the
streamed ``chat.completion.chunk`` events and of error bodies), so the client is tested against the
quirks it meets in the field, not against an idealised OpenAI:

* ``llama.cpp``  — ``llama-server -m X.gguf``: chunked HTTP/1.1, ``data: {...}\\n\\n`` events, a final
  chunk with ``finish_reason`` and ``timings``, then ``data: [DONE]``.  One model, ``owned_by:
  "llamacpp"``; the request's ``model`` is not checked.  With ``--api-key`` chat needs the key but
  ``/v1/models`` stays public; a bad key is ``401 {"error": {"code": 401, "message": "Invalid API
  Key", "type": "authentication_error"}}``.
* ``llama-cpp-python`` — ``python -m llama_cpp.server``: sse-starlette events end in ``\\r\\n``, with
  ``: ping`` comments; ``owned_by: "me"``; a bad key is ``401 {"detail": ...}``.  Served here
  close-delimited (HTTP/1.0) to cover the other way a body can end.
* ``ollama`` — ``ollama serve``'s ``/v1``: ``model`` is required and must be pulled (``404
  {"error": {"message": "model \\"x\\" not found, try pulling it first", ...}}``); a name without a
  tag means ``:latest``; ``system_fingerprint: "fp_ollama"``; ``owned_by: "library"``; no auth.
  ``old_ollama=True`` has no ``/v1/models`` (404 ``404 page not found``), only ``/api/tags``.
* ``vllm`` — ``vllm serve BASE --enable-lora --lora-modules NAME=PATH``: unknown model is ``404
  {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", ...}``;
  LoRA modules are listed with ``parent`` = the base; ``--api-key`` guards every ``/v1`` route
  (``401 {"error": "Unauthorized"}``).

Knobs for failure tests: ``first_byte_delay`` (seconds before the status line), ``cut_after`` (close
the connection after that many content pieces, without ``finish_reason`` or ``[DONE]``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FLAVOURS = ("llama.cpp", "llama-cpp-python", "ollama", "vllm")


@dataclass
class FakeConfig:
    """What one fake server serves and how it misbehaves."""

    flavour: str
    models: list[str]
    api_key: str = ""
    reply: str = "Sorry about the damaged parcel. Please send a photo and we will sort it out."
    lora: dict[str, str] = field(default_factory=dict)  # vLLM --lora-modules name -> path
    first_byte_delay: float = 0.0
    piece_delay: float = 0.0
    cut_after: int | None = None
    old_ollama: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def cfg(self) -> FakeConfig:
        return self.server.cfg

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self, route: str) -> bool:
        """Answer 401 the way the flavour does when the key is wrong or absent."""
        cfg = self.cfg
        if not cfg.api_key or cfg.flavour == "ollama":
            return True
        if cfg.flavour == "llama.cpp" and route == "models":
            return True  # llama-server keeps /v1/models public
        if self.headers.get("Authorization") == f"Bearer {cfg.api_key}":
            return True
        if cfg.flavour == "llama.cpp":
            self._json(401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}})
        elif cfg.flavour == "llama-cpp-python":
            self._json(401, {"detail": "Invalid API key"})
        else:
            self._json(401, {"error": "Unauthorized"})
        return False

    def _served_ids(self) -> list[str]:
        return self.cfg.models + list(self.cfg.lora)

    # -- routes ------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        cfg = self.cfg
        cfg.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
        now = int(time.time())
        if self.path == "/api/tags" and cfg.flavour == "ollama":
            self._json(200, {"models": [
                {"name": m, "model": m, "modified_at": "2026-11-01T10:00:00Z", "size": 986061892,
                 "digest": "a" * 64, "details": {"format": "gguf", "family": "qwen2", "parameter_size": "1.5B",
                                                 "quantization_level": "Q4_K_M"}}
                for m in cfg.models
            ]})
            return
        if self.path != "/v1/models" or (cfg.flavour == "ollama" and cfg.old_ollama):
            self._text(404, "404 page not found") if cfg.flavour == "ollama" else self._json(
                404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
            return
        if not self._authorised("models"):
            return
        if cfg.flavour == "llama.cpp":
            data = [{"id": m, "object": "model", "created": now, "owned_by": "llamacpp",
                     "meta": {"vocab_type": 2, "n_ctx_train": 32768, "n_params": 1543714304}} for m in cfg.models]
            self._json(200, {"models": [{"name": m, "model": m, "type": "model"} for m in cfg.models],
                             "object": "list", "data": data})
        elif cfg.flavour == "llama-cpp-python":
            self._json(200, {"object": "list",
                             "data": [{"id": m, "object": "model", "owned_by": "me", "permissions": []} for m in cfg.models]})
        elif cfg.flavour == "ollama":
            self._json(200, {"object": "list",
                             "data": [{"id": m, "object": "model", "created": now, "owned_by": "library"} for m in cfg.models]})
        else:
            base = cfg.models[0]
            data = [{"id": m, "object": "model", "created": now, "owned_by": "vllm", "root": m, "parent": None,
                     "max_model_len": 32768, "permission": []} for m in cfg.models]
            data += [{"id": name, "object": "model", "created": now, "owned_by": "vllm", "root": path,
                      "parent": base, "max_model_len": None, "permission": []} for name, path in cfg.lora.items()]
            self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:  # noqa: N802
        cfg = self.cfg
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        cfg.requests.append({"method": "POST", "path": self.path, "body": body,
                             "auth": self.headers.get("Authorization")})
        if cfg.first_byte_delay:
            time.sleep(cfg.first_byte_delay)
        if self.path != "/v1/chat/completions":
            self._text(404, "404 page not found") if cfg.flavour == "ollama" else self._json(
                404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
            return
        if not self._authorised("chat"):
            return
        model = body.get("model")
        if cfg.flavour == "ollama":
            if not model:
                self._json(400, {"error": {"message": "model is required", "type": "api_error",
                                           "param": None, "code": None}})
                return
            name = model if ":" in model else f"{model}:latest"
            if name not in cfg.models:
                self._json(404, {"error": {"message": f'model "{model}" not found, try pulling it first',
                                           "type": "api_error", "param": None, "code": None}})
                return
        if cfg.flavour == "vllm":
            model = model or cfg.models[0]
            if model not in self._served_ids():
                self._json(404, {"object": "error", "message": f"The model `{model}` does not exist.",
                                 "type": "NotFoundError", "param": None, "code": 404})
                return
        self._stream(model or cfg.models[0])

    # -- streaming ---------------------------------------------------------------------------------
    def _stream(self, model: str) -> None:
        cfg = self.cfg
        chunked = cfg.flavour != "llama-cpp-python"
        end = "\r\n\r\n" if cfg.flavour == "llama-cpp-python" else "\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        self.end_headers()

        def write(text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            self.wfile.flush()

        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            if cfg.flavour in ("vllm", "llama-cpp-python"):
                choice["logprobs"] = None
            chunk = {"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model, "choices": [choice], **extra}
            if cfg.flavour == "ollama":
                chunk["system_fingerprint"] = "fp_ollama"
            return f"data: {json.dumps(chunk)}{end}"

        try:
            if cfg.flavour == "llama-cpp-python":
                write(f": ping - 2026-11-30 05:00:00{end}")
            if cfg.flavour in ("vllm", "llama.cpp"):
                write(event({"role": "assistant", "content": "" if cfg.flavour == "vllm" else None}))
            words = cfg.reply.split(" ")
            for i, word in enumerate(words):
                if cfg.cut_after is not None and i == cfg.cut_after:
                    self.connection.shutdown(socket.SHUT_RDWR)  # the server died mid-reply
                    self.close_connection = True
                    return
                piece = word if i == 0 else " " + word
                delta = {"role": "assistant", "content": piece} if cfg.flavour == "ollama" else {"content": piece}
                write(event(delta))
                if cfg.piece_delay:
                    time.sleep(cfg.piece_delay)
            if cfg.flavour == "llama.cpp":
                write(event({}, "stop", timings={"prompt_n": 40, "predicted_n": len(words)}))
            elif cfg.flavour == "ollama":
                write(event({"role": "assistant", "content": ""}, "stop"))
            else:
                write(event({"content": ""} if cfg.flavour == "vllm" else {}, "stop"))
            write(f"data: [DONE]{end}")
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cfg: FakeConfig


class FakeLLMServer:
    """A fake server of one flavour on a free loopback port, served from a background thread."""

    def __init__(self, flavour: str, models: list[str], **options: Any) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}")
        self.cfg = FakeConfig(flavour=flavour, models=models, **options)
        handler = type("Handler", (_Handler,), {"protocol_version": "HTTP/1.0" if flavour == "llama-cpp-python"
                                                else "HTTP/1.1"})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.cfg = self.cfg
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The base URL a user puts in ``server_url``."""
        return self.root + "/v1"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

"""The outbox: every reply the agent sends, appended durably, optionally forwarded over HTTP.

A sent reply is the one thing that must never be lost - the customer is waiting for it, and the
agent has moved on.  So :meth:`Outbox.send` writes one JSON line and ``fsync``\\ s it *before* it
returns: if the app is closed, killed or the machine loses power right after, the line is on disk.

Line format (``outbox.jsonl`` in the data dir, one object per line, UTF-8)::

    {"conversation_id": "c-1042", "text": "Hi Ana, ...", "ts": 1764300000.12, "id": "9f1c...", ...meta}

``id`` is a random hex id (receivers can de-duplicate on it), ``ts`` epoch seconds; ``meta`` adds
the caller's fields (e.g. ``suggestion_backend``, ``outcome``, ``intent``).

Forwarding (``[listen] outbox_url`` in config.toml): each record is also POSTed as JSON to that URL
by a background thread, in order, with a timeout; the caller never waits for the network.  A record
that could not be delivered (network error, timeout, non-2xx answer, or the app closing first) is
appended to ``outbox.failed.jsonl`` as ``{"failed_at", "url", "error", "record"}``, and
:meth:`Outbox.retry_failed` sends those again.  A record whose POST was still running at close time
is also written there, so a retry may deliver it twice: de-duplicate on ``id``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from csassist import paths
from csassist.core.atomic import atomic_write_bytes
from csassist.core.errors import CsassistError
from csassist.core.private_files import make_private_dir

try:  # POSIX advisory locks keep two app instances from interleaving bytes of one line
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RESERVED_KEYS = frozenset({"conversation_id", "text", "ts", "id"})
DEFAULT_FORWARD_TIMEOUT_S = 5.0


# --------------------------------------------------------------------------------------------------
# Durable JSONL append / tolerant read
# --------------------------------------------------------------------------------------------------


def encode_json_line(record: dict[str, Any]) -> bytes:
    """One UTF-8 JSON line; ``ValueError`` for values JSON cannot hold (NaN, objects, ...).

    Human-readable (non-ASCII kept) unless the text carries lone surrogates, which UTF-8 cannot
    encode: then the line is written with ``\\u`` escapes instead of failing the send.
    """
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"outbox record is not JSON-serialisable: {exc}") from None
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def _fsync_dir(path: Path) -> None:
    """Persist the creation of a new file in ``path`` (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    """Exclusive advisory lock on ``fd`` for the duration of one append (no-op without fcntl)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def append_line_durably(path: Path, line: bytes) -> None:
    """Append one complete line to ``path`` and fsync it before returning.

    If a previous run died mid-line (the file does not end with a newline), a newline is written
    first so the torn fragment stays a separate, skippable line and the new record stays intact.
    """
    make_private_dir(path.parent)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        with _locked(fd):
            st = os.fstat(fd)
            if st.st_mode & 0o077:  # left group/other-readable by an older version
                with contextlib.suppress(OSError, AttributeError):
                    os.fchmod(fd, 0o600)
            size = st.st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def read_outbox(path: Path | None = None, on_problem: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """All records of an outbox-style JSONL file, oldest first; ``[]`` when the file does not exist.

    Tolerant by design: a torn last line (a write cut short) is ignored, and any other unreadable
    line is skipped and reported as ``file:line: why`` to ``on_problem``.
    """
    path = Path(path) if path is not None else paths.outbox_file()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        is_last = number == len(lines)
        try:
            obj = json.loads(raw.decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            if is_last and not complete:
                why = "torn last line (write was interrupted), ignored"
            else:
                why = f"unreadable line ({exc.__class__.__name__}), skipped"
            if on_problem is not None:
                on_problem(f"{path}:{number}: {why}")
            continue
        records.append(obj)
    return records


# --------------------------------------------------------------------------------------------------
# Forwarding
# --------------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect on a POST would silently turn it into a GET without body: treat it as a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def validate_forward_url(url: str) -> str:
    """The URL if it is an absolute http(s) URL, else a :class:`CsassistError` naming the setting."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CsassistError(f"[listen] outbox_url must be an http:// or https:// URL, got {url!r}")
    return url.strip()


def post_json(url: str, record: dict[str, Any], *, timeout: float, headers: dict[str, str] | None = None) -> None:
    """POST ``record`` as JSON; returns on a 2xx answer, raises ``OSError``/``ValueError`` otherwise."""
    body = json.dumps(record, allow_nan=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", "csassist-outbox")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} {exc.reason}") from None
    if not 200 <= status < 300:
        raise OSError(f"HTTP {status}")


def _describe(exc: BaseException) -> str:
    """A short, loggable reason for a failed POST."""
    if isinstance(exc, urllib.error.URLError):
        return f"{exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or exc.__class__.__name__


# --------------------------------------------------------------------------------------------------
# The outbox
# --------------------------------------------------------------------------------------------------


class Outbox:
    """Durable record of sent replies plus optional, non-blocking forwarding (see module docstring)."""

    def __init__(
        self,
        path: Path | None = None,
        forward_url: str | None = None,
        *,
        forward_timeout: float = DEFAULT_FORWARD_TIMEOUT_S,
        forward_headers: dict[str, str] | None = None,
        failed_path: Path | None = None,
        on_problem: Callable[[str], None] | None = None,
        record_sink: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else paths.outbox_file()
        #: Also given every sent record after it is on disk (the team store keeps a redacted copy:
        #: ``FeedbackLog.record_outbox``); a failure there is reported, the send still succeeded.
        self.record_sink = record_sink
        self.forward_url = validate_forward_url(forward_url) if forward_url and forward_url.strip() else None
        self.forward_timeout = forward_timeout
        self.forward_headers = dict(forward_headers or {})
        self.failed_path = (
            Path(failed_path) if failed_path is not None else self.path.with_name(f"{self.path.stem}.failed.jsonl")
        )
        self._on_problem = on_problem
        self._write_lock = threading.Lock()
        self._failed_lock = threading.Lock()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._in_flight: dict[str, Any] | None = None
        self._closed = False
        self._state_lock = threading.Lock()
        self._recorded_at_close: set[str] = set()  # ids close() already wrote to the failed file
        self._idle = threading.Condition()
        self._pending = 0
        #: Counters for the status bar: replies written, forwarded, and forwarding failures.
        self.sent = 0
        self.forwarded = 0
        self.forward_failures = 0
        self.last_forward_error: str | None = None

    # -- sending ----------------------------------------------------------------------------------
    def send(self, conversation_id: str, text: str, *, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append the reply durably (flush + fsync) and queue it for forwarding; returns the record.

        Raises ``ValueError`` for a programming error (empty id or text, reserved or non-JSON meta)
        and ``CsassistError`` when the outbox cannot be written (disk full, permissions): in both
        cases nothing was recorded and the caller must keep the reply in the composer.
        """
        if self._closed:
            raise CsassistError("outbox is closed")
        if not isinstance(conversation_id, str) or not conversation_id.strip():
            raise ValueError("outbox: conversation_id must be a non-empty string")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("outbox: refusing to send an empty reply")
        meta = dict(meta or {})
        clash = RESERVED_KEYS.intersection(meta)
        if clash:
            raise ValueError(f"outbox: meta may not override {sorted(clash)}")
        record: dict[str, Any] = {
            "conversation_id": conversation_id,
            "text": text,
            "ts": time.time(),
            "id": uuid.uuid4().hex,
            **meta,
        }
        line = encode_json_line(record)
        with self._write_lock:
            try:
                append_line_durably(self.path, line)
            except OSError as exc:
                raise CsassistError(f"{self.path}: cannot write the outbox ({exc.strerror or exc})") from None
            self.sent += 1
        if self.record_sink is not None:
            try:
                self.record_sink(record)
            except Exception as exc:  # noqa: BLE001 - the reply is safe on disk; the copy is a report
                self._problem(f"outbox: reply {record['id']} not recorded in the team store: {exc}")
        if self.forward_url is not None:
            self._enqueue(record)
        return record

    # -- forwarding -------------------------------------------------------------------------------
    def _enqueue(self, record: dict[str, Any]) -> None:
        with self._state_lock:  # held across the put so close() cannot slip in between
            if not self._closed:
                with self._idle:
                    self._pending += 1
                    if self._worker is None:
                        self._worker = threading.Thread(
                            target=self._forward_loop, name="csassist-outbox-forward", daemon=True
                        )
                        self._worker.start()
                self._queue.put(record)
                return
        # a send that raced with close(): keep it for retry instead of queueing it
        self._record_failure(record, "not forwarded before the app closed")

    def _forward_loop(self) -> None:
        """Deliver queued records one by one, in order; failures go to the failed file."""
        while True:
            record = self._queue.get()
            if record is None:
                return
            self._in_flight = record
            try:
                self._deliver(record)
            finally:
                self._in_flight = None
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, record: dict[str, Any]) -> None:
        assert self.forward_url is not None
        try:
            post_json(self.forward_url, record, timeout=self.forward_timeout, headers=self.forward_headers)
        except Exception as exc:  # network, HTTP status, timeouts: all recorded for retry
            with self._state_lock:
                if record["id"] in self._recorded_at_close:
                    return  # close() already wrote this record to the failed file
            self._record_failure(record, _describe(exc))
        else:
            self.forwarded += 1

    def _record_failure(self, record: dict[str, Any], error: str) -> None:
        self.forward_failures += 1
        self.last_forward_error = error
        entry = {"failed_at": time.time(), "url": self.forward_url, "error": error, "record": record}
        try:
            with self._failed_lock:
                append_line_durably(self.failed_path, encode_json_line(entry))
        except OSError as exc:
            self._problem(f"{self.failed_path}: cannot record a failed forward ({exc.strerror or exc})")
        self._problem(f"outbox: forwarding reply {record['id']} to {self.forward_url} failed: {error}")

    def wait_forwarded(self, timeout: float | None = None) -> bool:
        """Wait until every queued record was delivered or recorded as failed; ``True`` when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Give queued forwards up to ``timeout`` seconds, then record the rest as failed; idempotent."""
        if self._closed:
            return
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout)
        leftovers: list[dict[str, Any]] = []
        with self._state_lock:
            self._closed = True
            in_flight = self._in_flight
            if in_flight is not None and self._worker is not None and self._worker.is_alive():
                leftovers.append(in_flight)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    leftovers.append(item)
            self._queue.put(None)  # the drain took the stop marker; a still-busy worker must find it
            self._recorded_at_close.update(record["id"] for record in leftovers)
        for record in leftovers:
            self._record_failure(record, "not forwarded before the app closed")
        with self._idle:
            self._pending = 0
            self._idle.notify_all()

    def retry_failed(self) -> tuple[int, int]:
        """POST every record of the failed file again (synchronously); returns ``(delivered, still_failed)``.

        Delivered records leave the failed file; the others stay with their latest error.  Run it in a
        worker thread: it waits up to ``forward_timeout`` per record.
        """
        if self.forward_url is None:
            raise CsassistError("no [listen] outbox_url configured: nothing to retry against")
        with self._failed_lock:
            entries = read_outbox(self.failed_path, self._problem)
            remaining: list[dict[str, Any]] = []
            delivered = 0
            for entry in entries:
                record = entry.get("record")
                if not isinstance(record, dict):
                    continue
                try:
                    post_json(self.forward_url, record, timeout=self.forward_timeout, headers=self.forward_headers)
                except Exception as exc:
                    remaining.append({**entry, "failed_at": time.time(), "error": _describe(exc)})
                else:
                    delivered += 1
            atomic_write_bytes(self.failed_path, b"".join(encode_json_line(e) for e in remaining))
        self.forwarded += delivered
        return delivered, len(remaining)

    def _problem(self, text: str) -> None:
        if self._on_problem is not None:
            with contextlib.suppress(Exception):
                self._on_problem(text)

"""The feedback log: every suggestion shown to an agent and what became of it.

Accepted and edited replies are the best training data a support team has, so the log has to be
trustworthy.  Customer text is personal data, so every free-text field goes through
:func:`csassist.core.understand.redact.redact_for_storage` *before* it is written anywhere - no
e-mail address, phone or card number reaches the disk, the WAL, the local queue or the team's
PostgreSQL.  Each event carries an ``event_id`` (so a retried upload is stored once), the
``agent_id`` (``[store] agent_id``, default the OS user) and the ``model_versions`` that produced
the draft (generator + adapter, intent model, embedder), so team statistics can compare versions.

Where it goes (``[store] url``, see :mod:`csassist.core.db`):

* embedded (default): a local SQLite file in WAL mode with ``synchronous=FULL`` -
  :meth:`FeedbackLog.record` returns once the event is committed;
* team: ``postgresql://...`` - :meth:`FeedbackLog.record` commits the redacted event to a local
  spool file and returns; an upload thread moves batches to PostgreSQL (through a psycopg pool),
  retrying through outages, so nothing acknowledged is lost even if the app is killed.

Either way one writer thread per log does the local commits, grouping concurrent callers into one
transaction (see :mod:`csassist.core.db.writer`).

Callers are worker threads (the UI's persist worker, commands, benchmarks), never the UI thread.
Both backends use the same numbered migrations and refuse a database written by a newer csassist.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import hmac
import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, get_args

from csassist import paths
from csassist.core.atomic import atomic_write_text
from csassist.core.db.backend import Backend, EventFilter, is_postgres_url
from csassist.core.db.migrations import SCHEMA_VERSION
from csassist.core.db.spool import DEFAULT_MAX_PENDING, Spool, Uploader
from csassist.core.db.sqlite_backend import SqliteBackend
from csassist.core.db.writer import GroupWriter
from csassist.core.errors import CsassistError, DataError
from csassist.core.types import Outcome

OUTCOMES: tuple[str, ...] = get_args(Outcome)
__all__ = ["OUTCOMES", "SCHEMA_VERSION", "FeedbackEvent", "FeedbackLog", "default_agent_id", "word_edit_distance"]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class FeedbackEvent:
    """One suggestion shown to the agent and its outcome, as the UI (or a benchmark) reports it.

    Texts are given raw; :meth:`FeedbackLog.record` redacts them before storage.  ``model`` names the
    model *and* adapter version so statistics can compare versions.  ``final_text`` is what was sent
    (``None`` for accepted-as-is means "the suggestion itself").  ``customer_text`` (the message the
    suggestion answered) is optional and lets intent corrections retrain the intent model.  ``ts`` of
    0 means "now".  Not hashable (``model_versions`` is a mapping); compare, do not put in sets.
    """

    conversation_id: str
    turn: int
    slot: int
    suggestion_text: str
    prompt: str
    backend: str
    model: str
    source_ids: tuple[str, ...]
    intent: str | None
    intent_correction: str | None
    outcome: Outcome
    final_text: str | None
    reject_reason: str | None
    latency_ms: float | None
    first_token_ms: float | None
    ts: float = 0.0
    customer_text: str | None = None
    #: Which models produced the draft (``{"generator": ..., "intent_model": ...}``); empty means
    #: "those the log was told about" (:attr:`FeedbackLog.model_versions`).
    model_versions: Mapping[str, str] = field(default_factory=dict)
    #: Seconds from the customer's message to the reply this event belongs to (``None``: no reply).
    reply_s: float | None = None


def word_edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between the word/punctuation tokens of ``a`` and ``b``.

    Word level rather than character level because that is how agents edit (and it is cheap enough
    to compute on the UI thread for replies of a few hundred words).
    """
    x, y = _TOKEN.findall(a), _TOKEN.findall(b)
    if len(x) < len(y):
        x, y = y, x
    previous = list(range(len(y) + 1))
    for i, tok_x in enumerate(x, 1):
        current = [i]
        for j, tok_y in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (tok_x != tok_y)))
        previous = current
    return previous[-1]


def _redactor() -> Any:
    """The storage redaction function (imported lazily: it may load entity patterns)."""
    try:
        from csassist.core.understand.redact import redact_for_storage
    except ImportError as exc:  # refuse to log rather than write raw personal data
        raise CsassistError(
            "PII redaction (csassist.core.understand.redact) is unavailable, so the feedback log refuses to write"
        ) from exc
    return redact_for_storage


def _validate(event: FeedbackEvent) -> None:
    """Reject events that would make the log lie (unknown outcome, negative turn...)."""
    if event.outcome not in OUTCOMES:
        raise DataError(f"feedback event: unknown outcome {event.outcome!r} (expected one of {', '.join(OUTCOMES)})")
    if event.turn < 0 or event.slot < 0:
        raise DataError("feedback event: turn and slot must be >= 0")
    if not event.conversation_id:
        raise DataError("feedback event: conversation_id is empty")


def default_agent_id() -> str:
    """The OS user name: who the events of this workstation belong to unless ``[store] agent_id`` says."""
    with contextlib.suppress(Exception):
        return getpass.getuser() or "unknown"
    return "unknown"


class FeedbackLog:
    """Append-only, crash-safe, PII-redacted log of suggestion outcomes (see module docstring).

    ``FeedbackLog()`` is the embedded SQLite log in the data dir; ``FeedbackLog(path)`` another file;
    ``FeedbackLog(url="postgresql://...")`` the team store (``path`` is then the local spool file).
    Thread-safe: the TUI records from worker threads while the stats screen reads.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        url: str | None = None,
        agent_id: str | None = None,
        model_versions: Mapping[str, str] | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        url = (url or "").strip()
        if url.startswith("sqlite:///"):
            path, url = Path(url[len("sqlite:///"):]).expanduser(), ""
        self.agent_id = (agent_id or "").strip() or default_agent_id()
        #: Stamped on every event that does not carry its own (the app sets it once the engine is up).
        self.model_versions: dict[str, str] = dict(model_versions or {})
        self.url = url or None
        self._spool: Spool | None = None
        self._uploader: Uploader | None = None
        self._backend: Backend
        self._local: SqliteBackend | None = None
        if url and is_postgres_url(url):
            from csassist.core.db.postgres_backend import PostgresBackend

            self.path = Path(path) if path is not None else paths.data_dir() / "store-spool.sqlite3"
            backend = PostgresBackend(url)
            self._backend = backend
            self._spool = Spool(self.path, max_pending=max_pending)
            self._uploader = Uploader(self._spool, backend, retry_on=backend.errors, on_problem=on_problem)
        elif url:
            raise CsassistError(f"[store] url must be postgresql://... or sqlite:///PATH, got {url.split(':')[0]}:...")
        else:
            self.path = Path(path) if path is not None else paths.feedback_db()
            self._local = SqliteBackend(self.path)
            self._backend = self._local
        self._id_key = self._spool.pseudonym_key if self._spool is not None else self._local.pseudonym_key  # type: ignore[union-attr]
        self._writer = GroupWriter(self._commit, name="csassist-feedback-writer")

    @property
    def where(self) -> str:
        """Where the events end up (a file path, or the database URL with the password masked)."""
        return self._backend.where

    @property
    def is_team(self) -> bool:
        """Whether events go to a shared PostgreSQL."""
        return self._spool is not None

    # -- schema -----------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._read(self._backend.schema_version)

    def stored_conversation_id(self, conversation_id: str) -> str:
        """The id as written to the log: unchanged, unless it is personal data (an e-mail, a phone...).

        Help desks often key chats by the customer's address or number; such an id becomes
        ``pii-<16 hex>``, a keyed hash that still groups a conversation's events but names nobody.
        The key lives in the local file (the log, or in team mode the spool), so in team mode two
        workstations give one such conversation two pseudonyms; ordinary ids (``cw-1-42``) are kept.
        """
        if _redactor()(conversation_id) == conversation_id:
            return conversation_id
        digest = hmac.new(self._id_key, conversation_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return "pii-" + digest.hexdigest()[:16]

    # -- writing ----------------------------------------------------------------------------
    def event_row(self, event: FeedbackEvent) -> dict[str, Any]:
        """The redacted row stored for ``event`` (edit distance computed on the raw texts first)."""
        _validate(event)
        redact = _redactor()
        final = event.final_text
        if final is None and event.outcome == "accepted":
            final = event.suggestion_text
        distance: int | None = None
        ratio: float | None = None
        if final is not None and event.outcome in ("accepted", "edited"):
            distance = word_edit_distance(event.suggestion_text, final)
            longest = max(len(_TOKEN.findall(event.suggestion_text)), len(_TOKEN.findall(final)), 1)
            ratio = distance / longest

        def clean(text: str | None) -> str | None:
            return None if text is None else redact(text)

        return {
            "ts": event.ts or time.time(),
            "conversation_id": self.stored_conversation_id(event.conversation_id),
            "turn": int(event.turn),
            "slot": int(event.slot),
            "suggestion_text": redact(event.suggestion_text),
            "prompt": redact(event.prompt),
            "backend": event.backend,
            "model": event.model,
            "source_ids": list(event.source_ids),
            "intent": event.intent,
            "intent_correction": event.intent_correction,
            "outcome": event.outcome,
            "final_text": clean(final),
            "reject_reason": clean(event.reject_reason),
            "edit_distance": distance,
            "edit_ratio": ratio,
            "latency_ms": event.latency_ms,
            "first_token_ms": event.first_token_ms,
            "customer_text": clean(event.customer_text),
            "event_id": uuid.uuid4().hex,
            "agent_id": self.agent_id,
            "model_versions": {str(k): str(v) for k, v in (event.model_versions or self.model_versions).items()},
            "reply_s": event.reply_s,
        }

    def record(self, event: FeedbackEvent) -> int:
        """Redact, then store ``event`` durably; returns a positive local sequence number.

        Embedded: the event is committed to the SQLite log (the number is its row id).  Team: it is
        committed to the local spool and uploaded by the writer thread (the number is its spool
        sequence).  Either way, once this returns the event survives a crash.
        """
        return self._store("event", self.event_row(event))

    def record_outbox(self, record: Mapping[str, Any]) -> int:
        """Store a redacted copy of an outbox record (``id``, ``conversation_id``, ``text``, ``ts``, meta)."""
        redact = _redactor()
        meta = {k: v for k, v in record.items() if k not in ("id", "ts", "conversation_id", "text")}
        row = {
            "id": str(record["id"]),
            "ts": float(record.get("ts") or time.time()),
            "conversation_id": self.stored_conversation_id(str(record["conversation_id"])),
            "agent_id": self.agent_id,
            "text": redact(str(record["text"])),
            "meta": json.loads(json.dumps(meta, default=str)),
        }
        return self._store("outbox", row)

    def _store(self, kind: str, row: dict[str, Any]) -> int:
        """Hand the row to the writer thread and wait for the group commit that makes it durable."""
        return int(self._writer.submit((kind, row)))

    def _commit(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """Writer thread: embedded -> one SQLite transaction; team -> one spool transaction, then upload."""
        if self._spool is not None and self._uploader is not None:
            seqs = self._spool.push_many(items)
            self._uploader.wake()
            return seqs
        assert self._local is not None
        return self._local.write_batch(items)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Team: wait until every queued event reached PostgreSQL (``False`` on timeout).  Embedded: ``True``."""
        return self._uploader.flush(timeout) if self._uploader is not None else True

    @property
    def pending(self) -> int:
        """Events acknowledged but not yet in the team database (always 0 for the embedded log)."""
        return self._spool.count() if self._spool is not None else 0

    @property
    def last_error(self) -> str | None:
        """Why the last upload attempt failed (``None`` when it did not)."""
        return self._uploader.last_error if self._uploader is not None else None

    # -- reading ----------------------------------------------------------------------------
    def _read(self, call: Callable[..., Any], *args: Any) -> Any:
        """Run a read; a database that cannot be reached becomes a ``CsassistError`` naming it."""
        if self._local is not None:
            return call(*args)
        errors = getattr(self._backend, "errors", ())
        try:
            return call(*args)
        except errors as exc:
            raise CsassistError(f"cannot read the team store {self.where}: {exc}") from None

    def events(
        self,
        outcomes: tuple[str, ...] | None = None,
        since: float | None = None,
        until: float | None = None,
        conversation_id: str | None = None,
        limit: int | None = None,
        agent_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield stored events (oldest first) as plain dicts; ``source_ids`` comes back as a list,
        ``model_versions`` as a dict.  Team: only what has reached PostgreSQL (see :meth:`flush`)."""
        cid = None if conversation_id is None else self.stored_conversation_id(conversation_id)
        flt = EventFilter(outcomes, since, until, cid, agent_id, limit)
        yield from self._read(self._backend.select_events, flt)

    def outbox_records(self) -> list[dict[str, Any]]:
        """The stored (redacted) outbox records, oldest first."""
        return list(self._read(self._backend.select_outbox))

    def count(self) -> int:
        """How many events the log holds."""
        return int(self._read(self._backend.count))

    def export_jsonl(self, out: Path | str | IO[str]) -> int:
        """Write every event as one JSON object per line; return how many were written.

        ``out`` is a path (written atomically: readers never see half a file) or an open text stream.
        """
        if isinstance(out, (str, Path)):
            buffer = io.StringIO()
            count = self._write_jsonl(buffer)
            atomic_write_text(Path(out), buffer.getvalue())
            return count
        return self._write_jsonl(out)

    def _write_jsonl(self, stream: IO[str]) -> int:
        """Serialise events to ``stream``."""
        count = 0
        for record in self.events():
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        return count

    def integrity_ok(self) -> bool:
        """SQLite's own ``PRAGMA integrity_check`` of the local file (PostgreSQL checks itself)."""
        return self._local.integrity_ok() if self._local is not None else True

    def close(self, timeout: float = 2.0) -> None:
        """Give queued uploads up to ``timeout`` seconds, then close (the rest waits in the spool)."""
        self._writer.close()
        if self._uploader is not None:
            self._uploader.flush(timeout)
            self._uploader.stop()
        if self._spool is not None:
            self._spool.close()
        self._backend.close()

    def __enter__(self) -> FeedbackLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_feedback_log(settings: Any, on_problem: Callable[[str], None] | None = None) -> FeedbackLog:
    """The log ``settings.store`` asks for (embedded SQLite unless ``[store] url`` is set)."""
    store = getattr(settings, "store", None)
    return FeedbackLog(
        url=getattr(store, "url", "") or None,
        agent_id=getattr(store, "agent_id", "") or None,
        max_pending=int(getattr(store, "max_pending", DEFAULT_MAX_PENDING) or DEFAULT_MAX_PENDING),
        on_problem=on_problem,
    )

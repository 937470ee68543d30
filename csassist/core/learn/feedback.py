"""The feedback log: every suggestion shown to an agent and what became of it.

Accepted and edited replies are the best training data a support team has, so the log has to be
trustworthy: it lives in SQLite in WAL mode with ``synchronous=FULL`` and one transaction per event,
which means a process killed mid-write loses at most the event in flight and the file always opens
cleanly afterwards.  Customer text is personal data, so every free-text field goes through
:func:`csassist.core.understand.redact.redact_for_storage` *before* it reaches SQLite: no e-mail address, phone
or card number is ever written to disk, not even to the WAL.

The schema is versioned (``schema_version`` table) and upgraded by the ordered ``_MIGRATIONS`` list,
so a newer csassist can read an older team's log; a log written by a *newer* csassist is refused with
a clear message instead of being misread.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, get_args

from csassist import paths
from csassist.core.atomic import atomic_write_text
from csassist.core.errors import CsassistError, DataError
from csassist.core.private_files import create_private_file, make_private_dir, tighten
from csassist.core.types import Outcome

OUTCOMES: tuple[str, ...] = get_args(Outcome)

#: Ordered schema migrations; ``_MIGRATIONS[i]`` upgrades a log from version ``i`` to ``i + 1``.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        conversation_id TEXT NOT NULL,
        turn INTEGER NOT NULL,
        slot INTEGER NOT NULL,
        suggestion_text TEXT NOT NULL,
        prompt TEXT NOT NULL,
        backend TEXT NOT NULL,
        model TEXT NOT NULL,
        source_ids TEXT NOT NULL,
        intent TEXT,
        intent_correction TEXT,
        outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'edited', 'rejected', 'ignored')),
        final_text TEXT,
        reject_reason TEXT,
        edit_distance INTEGER,
        edit_ratio REAL,
        latency_ms REAL,
        first_token_ms REAL,
        customer_text TEXT
    );
    CREATE INDEX events_ts ON events (ts);
    CREATE INDEX events_outcome ON events (outcome);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

_COLUMNS: tuple[str, ...] = (
    "id",
    "ts",
    "conversation_id",
    "turn",
    "slot",
    "suggestion_text",
    "prompt",
    "backend",
    "model",
    "source_ids",
    "intent",
    "intent_correction",
    "outcome",
    "final_text",
    "reject_reason",
    "edit_distance",
    "edit_ratio",
    "latency_ms",
    "first_token_ms",
    "customer_text",
)

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class FeedbackEvent:
    """One suggestion shown to the agent and its outcome, as the UI (or a benchmark) reports it.

    Texts are given raw; :meth:`FeedbackLog.record` redacts them before storage.  ``model`` names the
    model *and* adapter version so statistics can compare versions.  ``final_text`` is what was sent
    (``None`` for accepted-as-is means "the suggestion itself").  ``customer_text`` (the message the
    suggestion answered) is optional and lets intent corrections retrain the intent model.  ``ts`` of
    0 means "now".
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


class FeedbackLog:
    """Append-only, crash-safe, PII-redacted log of suggestion outcomes (SQLite in WAL mode).

    Thread-safe: the TUI records from worker threads while the stats screen reads.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.feedback_db()
        make_private_dir(self.path.parent)
        # SQLite gives -wal/-shm the database file's mode, so a 0600 database keeps them 0600 too.
        create_private_file(self.path)
        for journal in ("-wal", "-shm"):
            tighten(self.path.with_name(self.path.name + journal))  # left 0644 by an older csassist
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._id_key = self._pseudonym_key()
        except sqlite3.DatabaseError as exc:
            raise CsassistError(f"{self.path}: not a readable csassist feedback log ({exc})") from exc

    def _pseudonym_key(self) -> bytes:
        """This log's random key for pseudonymous conversation ids (created on first use).

        A table of its own rather than a schema migration: older csassist versions ignore it.
        """
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS pseudonym_key (key BLOB NOT NULL)")
            row = self._conn.execute("SELECT key FROM pseudonym_key LIMIT 1").fetchone()
            if row is not None:
                return bytes(row[0])
            key = secrets.token_bytes(32)
            self._conn.execute("INSERT INTO pseudonym_key (key) VALUES (?)", (key,))
            return key

    def stored_conversation_id(self, conversation_id: str) -> str:
        """The id as written to the log: unchanged, unless it is personal data (an e-mail, a phone...).

        Help desks often key chats by the customer's address or number; such an id becomes
        ``pii-<16 hex>``, a keyed hash that still groups a conversation's events but names nobody.
        """
        if _redactor()(conversation_id) == conversation_id:
            return conversation_id
        digest = hmac.new(self._id_key, conversation_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return "pii-" + digest.hexdigest()[:16]

    # -- schema -----------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Create or upgrade the schema in one transaction per step."""
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise CsassistError(
                    f"{self.path}: feedback log schema v{version} is newer than this csassist "
                    f"(v{SCHEMA_VERSION}); upgrade csassist to read it"
                )
            for step in range(version, SCHEMA_VERSION):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _MIGRATIONS[step].split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version (version) VALUES (?)", (step + 1,))
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        with self._lock:
            row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    # -- writing ----------------------------------------------------------------------------
    def record(self, event: FeedbackEvent) -> int:
        """Redact, then append ``event`` in its own durable transaction; return its row id.

        The edit distance is computed on the raw texts (so redaction does not count as an edit) and
        only the redacted texts are stored.
        """
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

        row = (
            event.ts or time.time(),
            self.stored_conversation_id(event.conversation_id),
            int(event.turn),
            int(event.slot),
            redact(event.suggestion_text),
            redact(event.prompt),
            event.backend,
            event.model,
            json.dumps(list(event.source_ids)),
            event.intent,
            event.intent_correction,
            event.outcome,
            clean(final),
            clean(event.reject_reason),
            distance,
            ratio,
            event.latency_ms,
            event.first_token_ms,
            clean(event.customer_text),
        )
        placeholders = ", ".join("?" for _ in row)
        with self._lock:
            cursor = self._conn.execute(
                f"INSERT INTO events ({', '.join(_COLUMNS[1:])}) VALUES ({placeholders})",  # noqa: S608 - fixed names
                row,
            )
            return int(cursor.lastrowid or 0)

    # -- reading ----------------------------------------------------------------------------
    def events(
        self,
        outcomes: tuple[str, ...] | None = None,
        since: float | None = None,
        until: float | None = None,
        conversation_id: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield stored events (oldest first) as plain dicts; ``source_ids`` comes back as a list."""
        clauses: list[str] = []
        params: list[Any] = []
        if outcomes:
            clauses.append(f"outcome IN ({', '.join('?' for _ in outcomes)})")
            params.extend(outcomes)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)
        if until is not None:
            clauses.append("ts < ?")
            params.append(until)
        if conversation_id is not None:
            clauses.append("conversation_id = ?")
            params.append(self.stored_conversation_id(conversation_id))
        sql = f"SELECT {', '.join(_COLUMNS)} FROM events"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        for values in rows:
            record = dict(zip(_COLUMNS, values, strict=True))
            try:
                record["source_ids"] = json.loads(record["source_ids"] or "[]")
            except json.JSONDecodeError:
                record["source_ids"] = []
            yield record

    def count(self) -> int:
        """How many events the log holds."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

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
        """SQLite's own ``PRAGMA integrity_check`` (used by tests and ``csassist log path``)."""
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        """Checkpoint the WAL and close; safe to call twice."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    def __enter__(self) -> FeedbackLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

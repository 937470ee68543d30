"""The embedded backend: one SQLite file in WAL mode, ``synchronous=FULL``, one transaction per write.

A process killed mid-write loses at most the transaction in flight and the file always opens cleanly
afterwards; this is what csassist 0.1's feedback log was, now behind the shared backend interface.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csassist.core.db.backend import EventFilter, decode_event
from csassist.core.db.migrations import (
    EVENT_COLUMNS,
    EVENT_INSERT_COLUMNS,
    OUTBOX_COLUMNS,
    SCHEMA_VERSION,
    SQLITE,
    statements,
    too_new,
)
from csassist.core.errors import CsassistError
from csassist.core.private_files import create_private_file, make_private_dir, tighten


class SqliteBackend:
    """Feedback events and outbox records in a local SQLite file (thread-safe via one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        private_sqlite_file(self.path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self.migrate()
            with self._lock:
                self.pseudonym_key = pseudonym_key(self._conn)
        except sqlite3.DatabaseError as exc:
            raise CsassistError(f"{self.path}: not a readable csassist feedback log ({exc})") from exc

    # -- schema -----------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The newest version recorded in the file."""
        with self._lock:
            row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def migrate(self) -> None:
        """Create or upgrade the schema, one transaction per step; refuse a newer file."""
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise CsassistError(too_new(self.where, version))
            for step in range(version, SCHEMA_VERSION):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements(SQLITE[step]):
                        self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version (version) VALUES (?)", (step + 1,))
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    # -- writing ----------------------------------------------------------------------------------
    def write_batch(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """Insert ``("event" | "outbox", row)`` items in ONE transaction (one fsync for the group).

        Returns one number per item: the new event row id, 1 for a new outbox record, 0 where the
        row was already stored (same ``event_id`` / outbox ``id``).
        """
        events_sql = (
            f"INSERT INTO events ({', '.join(EVENT_INSERT_COLUMNS)}) "  # noqa: S608 - fixed names
            f"VALUES ({', '.join('?' for _ in EVENT_INSERT_COLUMNS)}) ON CONFLICT (event_id) DO NOTHING"
        )
        outbox_sql = (
            f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES ({', '.join('?' for _ in OUTBOX_COLUMNS)}) "
            "ON CONFLICT (id) DO NOTHING"
        )
        ids: list[int] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for kind, row in items:
                    if kind == "outbox":
                        cursor = self._conn.execute(outbox_sql, [_sql_value(row[c]) for c in OUTBOX_COLUMNS])
                        ids.append(1 if cursor.rowcount else 0)
                    else:
                        cursor = self._conn.execute(events_sql, [_sql_value(row[c]) for c in EVENT_INSERT_COLUMNS])
                        ids.append(int(cursor.lastrowid or 0) if cursor.rowcount else 0)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return ids

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert ``rows`` in one transaction; one id per row, 0 where ``event_id`` was already stored."""
        return self.write_batch([("event", row) for row in rows])

    def insert_outbox(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert outbox records (ids already stored are skipped) in one transaction."""
        self.write_batch([("outbox", row) for row in rows])

    # -- reading ----------------------------------------------------------------------------------
    def select_events(self, flt: EventFilter) -> list[dict[str, Any]]:
        """Events matching ``flt``, oldest first."""
        where, params = flt.where("?")
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events{where} ORDER BY id"  # noqa: S608 - fixed names
        if flt.limit is not None:
            sql += " LIMIT ?"
            params.append(int(flt.limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [decode_event(values) for values in rows]

    def select_outbox(self) -> list[dict[str, Any]]:
        """Outbox records, oldest first."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox ORDER BY ts, id").fetchall()
        return [_outbox(values) for values in rows]

    def count(self) -> int:
        """How many events the file holds."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def integrity_ok(self) -> bool:
        """SQLite's own ``PRAGMA integrity_check``."""
        with self._lock:
            return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        """Checkpoint the WAL and close; safe to call twice."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()


def private_sqlite_file(path: Path) -> None:
    """Create the folder 0700 and the database 0600 before SQLite opens it (its -wal/-shm inherit the
    file's mode); tighten journals an older csassist left 0644."""
    make_private_dir(path.parent)
    create_private_file(path)
    for journal in ("-wal", "-shm"):
        tighten(path.with_name(path.name + journal))


def pseudonym_key(conn: sqlite3.Connection) -> bytes:
    """This file's random key for pseudonymous conversation ids (created on first use).

    A table of its own rather than a schema migration: older csassist versions ignore it.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS pseudonym_key (key BLOB NOT NULL)")
    row = conn.execute("SELECT key FROM pseudonym_key LIMIT 1").fetchone()
    if row is not None:
        return bytes(row[0])
    key = secrets.token_bytes(32)
    conn.execute("INSERT INTO pseudonym_key (key) VALUES (?)", (key,))
    return key


def _sql_value(value: Any) -> Any:
    """Lists and dicts go in as JSON text; everything else as is."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    return value


def _outbox(values: Sequence[Any]) -> dict[str, Any]:
    """An outbox row as a dict with ``meta`` decoded."""
    record = dict(zip(OUTBOX_COLUMNS, values, strict=True))
    try:
        meta = json.loads(record["meta"] or "{}")
    except ValueError:
        meta = {}
    record["meta"] = meta if isinstance(meta, dict) else {}
    return record

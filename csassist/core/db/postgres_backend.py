"""The team backend: PostgreSQL through psycopg 3 and a small connection pool (psycopg_pool).

Many workstations write into one database, so each write is one short transaction and retried
uploads are idempotent (``ON CONFLICT (event_id) DO NOTHING``).  The pool checks a connection before
lending it (``check_connection``), so after a database restart the first write gets a fresh
connection instead of a dead one.  Connecting never happens in the constructor: an app started while
the database is down still starts, and its events wait in the local spool (see ``spool.py``).
Migrations run under a transaction-scoped advisory lock so concurrent first starts upgrade once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from csassist.core.db.backend import EventFilter, decode_event, masked
from csassist.core.db.migrations import (
    EVENT_COLUMNS,
    EVENT_INSERT_COLUMNS,
    OUTBOX_COLUMNS,
    POSTGRES,
    SCHEMA_VERSION,
    statements,
    too_new,
)
from csassist.core.db.sqlite_backend import _outbox, _sql_value
from csassist.core.errors import CsassistError

# The pool logs every failed reconnect as a warning; without a handler Python prints those on stderr,
# i.e. across the terminal app.  Outages reach the agent through the uploader's ``on_problem``.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

#: Key of the advisory lock held while migrating (any fixed 64-bit number; this spells "csassist").
_MIGRATION_LOCK = 0x6373617373697374


def _psycopg() -> Any:
    """Import psycopg lazily with an actionable message (it is the optional ``team`` extra)."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise CsassistError(
            "a postgresql:// store needs psycopg 3 and psycopg-pool: pip install 'csassist[team]'"
        ) from exc
    return psycopg, psycopg_pool


class PostgresBackend:
    """Feedback events and outbox records in PostgreSQL (see module docstring)."""

    def __init__(self, url: str, *, max_connections: int = 4, connect_timeout_s: float = 3.0) -> None:
        self.url = url
        self.where = masked(url)
        self.connect_timeout_s = connect_timeout_s
        psycopg, pool_mod = _psycopg()
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error, pool_mod.PoolTimeout, OSError)
        self._pool = pool_mod.ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=connect_timeout_s,
            check=pool_mod.ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(connect_timeout_s)), "autocommit": False},
            name="csassist-store",
        )
        self._pool.open(wait=False)
        self._migrated = False
        self._lock = threading.Lock()

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions that mean "the database is unreachable or refused": the spool retries on them."""
        return self._errors

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """A pooled connection inside one transaction (committed on success, rolled back on error)."""
        with self._pool.connection(timeout=self.connect_timeout_s) as conn, conn.transaction():
            yield conn

    def _ensure_schema(self) -> None:
        """Migrate once per process, on first use."""
        if not self._migrated:
            with self._lock:
                if not self._migrated:
                    self.migrate()
                    self._migrated = True

    # -- schema -----------------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The newest version recorded in the database (0 when csassist never ran there)."""
        with self._conn() as conn:
            exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()[0]
            if exists is None:
                return 0
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def migrate(self) -> None:
        """Create or upgrade the schema under an advisory lock, one transaction for all steps."""
        with self._conn() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise CsassistError(too_new(self.where, version))
            for step in range(version, SCHEMA_VERSION):
                for statement in statements(POSTGRES[step]):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (step + 1,))

    # -- writing ----------------------------------------------------------------------------------
    def insert_events(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert ``rows`` in one transaction; one id per row, 0 where ``event_id`` was already stored."""
        self._ensure_schema()
        sql = (
            f"INSERT INTO events ({', '.join(EVENT_INSERT_COLUMNS)}) "  # noqa: S608 - fixed names
            f"VALUES ({', '.join('%s' for _ in EVENT_INSERT_COLUMNS)}) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING id"
        )
        ids: list[int] = []
        with self._conn() as conn, conn.cursor() as cur:
            for row in rows:
                cur.execute(sql, [_sql_value(row[c]) for c in EVENT_INSERT_COLUMNS])
                got = cur.fetchone()
                ids.append(int(got[0]) if got is not None else 0)
        return ids

    def insert_outbox(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert outbox records; ids already stored are skipped."""
        self._ensure_schema()
        sql = (
            f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) "
            f"VALUES ({', '.join('%s' for _ in OUTBOX_COLUMNS)}) ON CONFLICT (id) DO NOTHING"
        )
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(sql, [[_sql_value(row[c]) for c in OUTBOX_COLUMNS] for row in rows])

    # -- reading ----------------------------------------------------------------------------------
    def select_events(self, flt: EventFilter) -> list[dict[str, Any]]:
        """Events matching ``flt``, oldest first."""
        self._ensure_schema()
        where, params = flt.where("%s")
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events{where} ORDER BY id"  # noqa: S608 - fixed names
        if flt.limit is not None:
            sql += " LIMIT %s"
            params.append(int(flt.limit))
        with self._conn() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [decode_event(values) for values in rows]

    def select_outbox(self) -> list[dict[str, Any]]:
        """Outbox records, oldest first."""
        self._ensure_schema()
        with self._conn() as conn:
            rows = conn.execute(f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox ORDER BY ts, id").fetchall()
        return [_outbox(values) for values in rows]

    def count(self) -> int:
        """How many events the team has stored."""
        self._ensure_schema()
        with self._conn() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        """Close the pool; safe to call twice."""
        self._pool.close()

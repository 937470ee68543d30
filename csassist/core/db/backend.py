"""The interface both databases implement, plus the pieces of SQL they share.

Rows travel as plain dicts keyed by the column names of :mod:`csassist.core.db.migrations`;
``source_ids`` and ``model_versions`` are JSON text in the database and lists/dicts in Python.
Everything a backend receives is already redacted (the feedback log redacts before it builds a row).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from csassist.core.db.migrations import EVENT_COLUMNS


@dataclass(frozen=True)
class EventFilter:
    """Which events to read; ``None`` fields do not filter."""

    outcomes: tuple[str, ...] | None = None
    since: float | None = None
    until: float | None = None
    conversation_id: str | None = None
    agent_id: str | None = None
    limit: int | None = None

    def where(self, mark: str) -> tuple[str, list[Any]]:
        """``(" WHERE ...", params)`` with ``mark`` as the placeholder (``?`` SQLite, ``%s`` psycopg)."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.outcomes:
            clauses.append(f"outcome IN ({', '.join(mark for _ in self.outcomes)})")
            params.extend(self.outcomes)
        for column, op, value in (("ts", ">=", self.since), ("ts", "<", self.until),
                                  ("conversation_id", "=", self.conversation_id), ("agent_id", "=", self.agent_id)):
            if value is not None:
                clauses.append(f"{column} {op} {mark}")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class Backend(Protocol):
    """What the feedback log needs from a database (see module docstring)."""

    #: Where the data lives, for messages (a path, or a URL with the password masked).
    where: str

    def schema_version(self) -> int:
        """The version recorded in ``schema_version`` (0 for an empty database)."""
        ...

    def migrate(self) -> None:
        """Create or upgrade the schema; refuse a newer one with ``CsassistError``."""
        ...

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert in one transaction; one id per row, 0 where its ``event_id`` was already stored."""
        ...

    def insert_outbox(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert outbox records in one transaction, skipping ids already stored."""
        ...

    def select_events(self, flt: EventFilter) -> list[dict[str, Any]]:
        """Stored events, oldest first, JSON columns decoded."""
        ...

    def select_outbox(self) -> list[dict[str, Any]]:
        """Stored outbox records, oldest first (``meta`` decoded)."""
        ...

    def count(self) -> int:
        """How many events are stored."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


def decode_event(values: Sequence[Any]) -> dict[str, Any]:
    """A database row of :data:`EVENT_COLUMNS` as a dict with JSON columns decoded."""
    record = dict(zip(EVENT_COLUMNS, values, strict=True))
    record["source_ids"] = _json(record.get("source_ids"), [])
    record["model_versions"] = _json(record.get("model_versions"), {})
    return record


def _json(text: Any, default: Any) -> Any:
    """Decode a JSON column, ``default`` for NULL or damaged text (a bad row must not break reading)."""
    if not text:
        return default
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return urllib.parse.urlsplit(url.strip()).scheme in ("postgresql", "postgres")


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))

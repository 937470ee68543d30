"""Numbered schema migrations, one ordered list of SQL scripts per backend.

``SQLITE[i]`` and ``POSTGRES[i]`` both take a database from version ``i`` to ``i + 1`` and describe
the same tables, so :data:`SCHEMA_VERSION` means one thing on both.  A migration is never edited
once released: a change is a new entry at the end.  Scripts are split on ``;`` and run in one
transaction with the ``schema_version`` row that records them (PostgreSQL also takes an advisory
lock, so fifty workstations starting at once upgrade the shared database exactly once).

v1  the feedback ``events`` table (as csassist 0.1 wrote it)
v2  team mode: ``event_id`` (unique, makes retried uploads idempotent), ``agent_id``,
    ``model_versions`` (JSON: which generator/adapter/intent model/embedder produced the draft)
    and the ``outbox`` table (a redacted record of every reply sent)
v3  ``reply_s``: seconds from the customer's message to the agent's reply (team statistics)
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = (
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
    """
    ALTER TABLE events ADD COLUMN event_id TEXT;
    ALTER TABLE events ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN model_versions TEXT NOT NULL DEFAULT '{}';
    CREATE UNIQUE INDEX events_event_id ON events (event_id);
    CREATE INDEX events_agent ON events (agent_id);
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        ts REAL NOT NULL,
        conversation_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        text TEXT NOT NULL,
        meta TEXT NOT NULL
    );
    CREATE INDEX outbox_ts ON outbox (ts);
    """,
    """
    ALTER TABLE events ADD COLUMN reply_s REAL;
    """,
)

POSTGRES: tuple[str, ...] = (
    """
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
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
        edit_ratio DOUBLE PRECISION,
        latency_ms DOUBLE PRECISION,
        first_token_ms DOUBLE PRECISION,
        customer_text TEXT
    );
    CREATE INDEX events_ts ON events (ts);
    CREATE INDEX events_outcome ON events (outcome);
    """,
    """
    ALTER TABLE events ADD COLUMN event_id TEXT;
    ALTER TABLE events ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN model_versions TEXT NOT NULL DEFAULT '{}';
    CREATE UNIQUE INDEX events_event_id ON events (event_id);
    CREATE INDEX events_agent ON events (agent_id);
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        conversation_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        text TEXT NOT NULL,
        meta TEXT NOT NULL
    );
    CREATE INDEX outbox_ts ON outbox (ts);
    """,
    """
    ALTER TABLE events ADD COLUMN reply_s DOUBLE PRECISION;
    """,
)

assert len(SQLITE) == len(POSTGRES), "every schema version must exist on both backends"
SCHEMA_VERSION = len(SQLITE)

#: Columns of ``events`` in the order :meth:`Backend.select_events` returns them.
EVENT_COLUMNS: tuple[str, ...] = (
    "id", "ts", "conversation_id", "turn", "slot", "suggestion_text", "prompt", "backend", "model", "source_ids",
    "intent", "intent_correction", "outcome", "final_text", "reject_reason", "edit_distance", "edit_ratio",
    "latency_ms", "first_token_ms", "customer_text", "event_id", "agent_id", "model_versions", "reply_s",
)
#: Columns written on insert (the database assigns ``id``).
EVENT_INSERT_COLUMNS: tuple[str, ...] = EVENT_COLUMNS[1:]
OUTBOX_COLUMNS: tuple[str, ...] = ("id", "ts", "conversation_id", "agent_id", "text", "meta")


def statements(script: str) -> list[str]:
    """The non-empty statements of one migration script."""
    return [s.strip() for s in script.split(";") if s.strip()]


def too_new(where: str, version: int) -> str:
    """The one message for a database written by a newer csassist (both backends use it)."""
    return (
        f"{where}: feedback log schema v{version} is newer than this csassist (v{SCHEMA_VERSION}); "
        "upgrade csassist to read it"
    )

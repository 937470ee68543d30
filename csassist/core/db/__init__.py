"""The databases behind the feedback log and the outbox record.

One agent on one workstation keeps both in a local SQLite file (the embedded default); a team points
``[store] url`` at PostgreSQL and every workstation writes into the same tables.  Both backends
speak the same small interface (:class:`~csassist.core.db.backend.Backend`), are created and
upgraded by the same numbered migrations (:mod:`csassist.core.db.migrations`) and refuse a
database written by a newer csassist the same way.  Writes to a remote database go through a local
durable queue (:mod:`csassist.core.db.spool`) so a network or database outage never loses an event
the app has acknowledged.
"""

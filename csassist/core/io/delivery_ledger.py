"""Which outbox replies already reached a helpdesk, remembered durably across runs.

Why a module of its own: the outbox is the durable record of what the agent sent, and a helpdesk
sender re-reads it at every start to deliver what a previous run did not.  That is only safe if the
sender also knows, durably, what it *did* deliver — otherwise a restart posts a reply to the customer
a second time.  The ledger is that memory: one fsynced JSON line ``{"id", "at"}`` per delivered outbox
id, read back with the outbox's own tolerant reader.  Nothing in it is Chatwoot-specific, so a sender
for another helpdesk keeps its own ledger file the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

from csassist.core.io.outbox import append_line_durably, encode_json_line, read_outbox


class DeliveryLedger:
    """The outbox ids delivered so far (loaded from ``path``; each new one appended and fsynced)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ids = {str(r.get("id")) for r in read_outbox(self.path)}

    def __contains__(self, outbox_id: object) -> bool:
        """Whether the reply with this outbox id was delivered (by this run or an earlier one)."""
        return outbox_id in self._ids

    def record(self, outbox_id: str) -> None:
        """Remember ``outbox_id`` as delivered: in memory at once, then on disk.

        The in-memory mark comes first so this run never posts the reply again even when the disk
        write fails; the ``OSError`` is raised for the caller to report (the next run may then post
        it once more, which the sender's check for the reply in the conversation usually prevents).
        """
        self._ids.add(outbox_id)
        append_line_durably(self.path, encode_json_line({"id": outbox_id, "at": time.time()}))

"""The size and count limits of every intake, in one place (README "Limits" quotes these).

One message is one JSON object, whether it comes as an HTTP body, a line of a followed file or a line
on stdin, so the same cap applies to all three: a runaway writer or a hostile client cannot make any
feed hold megabytes in memory or hand the engine a message that takes seconds to analyse.

:func:`fd_headroom` lives here too: it measures the process limit that :data:`FD_RESERVE` guards,
so the reserve and the way it is checked are read in one place.
"""

from __future__ import annotations

import os

#: Largest message accepted from any feed: an HTTP body, one JSONL line of a file or of stdin (bytes).
MAX_MESSAGE_BYTES = 64 * 1024
#: Most connections the HTTP intake serves at once; more wait in the kernel's backlog, then are refused.
MAX_CONNECTIONS = 128
#: Seconds a client has for a whole request (request line, headers and body) before it is dropped.
REQUEST_DEADLINE_S = 10.0
#: File descriptors kept free for the outbox, the feedback log and the KB: the intake stops accepting
#: connections when fewer than this many remain below the process limit.
FD_RESERVE = 64
#: Largest knowledge-base file read (bytes); bigger ones are reported, not chunked (config: [retrieval]).
DEFAULT_MAX_KB_FILE_BYTES = 4 * 1024 * 1024


def fd_headroom() -> int | None:
    """File descriptors still free below this process's soft limit, or ``None`` when unknown/unlimited."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return None
        return int(soft) - len(os.listdir("/proc/self/fd"))
    except (ImportError, OSError, ValueError):
        return None

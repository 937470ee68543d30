"""A socket reader with one deadline for a whole request, not a timeout per read.

Why: the HTTP intake (:mod:`csassist.core.io.listen`) must drop a client that trickles its request
one byte at a time; a per-read timeout lets such a client hold a thread and a descriptor forever.
Kept apart from the server because it is a plain I/O piece with no knowledge of HTTP.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Protocol


class HasDeadline(Protocol):
    """Whatever holds the request's deadline (``time.monotonic()`` seconds); the HTTP handler here."""

    deadline: float


class DeadlineSocketIO(socket.SocketIO):
    """A socket reader that gives the whole request one deadline instead of a timeout per read.

    Before every ``recv`` the socket timeout is set to the time left, and once it is spent the read
    raises ``TimeoutError`` - which ``BaseHTTPRequestHandler`` answers by closing the connection.
    The deadline is read from ``owner`` at each read, so the owner may move it per request.
    """

    def __init__(self, sock: socket.socket, owner: HasDeadline) -> None:
        super().__init__(sock, "rb")
        self._owner = owner
        self._socket = sock

    def readinto(self, buffer: Any) -> int | None:
        left = self._owner.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._socket.settimeout(left)
        return super().readinto(buffer)

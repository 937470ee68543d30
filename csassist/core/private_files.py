"""User data stays private to the user: files 0600, folders 0700, whatever the umask says.

The feedback log, the outbox, indexes and models hold customer text.  With the usual umask 022 a
SQLite database and its ``-wal`` journal came out 0644 in a 0755 data folder, readable by every
account on a shared machine, while the outbox next to it was 0600.  These helpers give every writer
the same rule; the CLI also sets umask 077 so third-party writers (FAISS, torch) follow it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 folders; tighten ``path`` if it is csassist's own.

    Existing folders are left alone (``~``, a shared mount, the folder a user named with ``--out``),
    except csassist's own data/config/cache folders and what lies inside them: those are narrowed to
    0700 when an older version left them group/other-accessible.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        with contextlib.suppress(OSError):
            os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    if _is_ours(path):
        tighten(path)
    return path


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is (inside) one of csassist's own folders, which may always be tightened."""
    from csassist import paths

    try:
        resolved = path.resolve()
        return any(resolved.is_relative_to(root().resolve()) for root in (paths.data_dir, paths.config_dir, paths.cache_dir))
    except OSError:
        return False


def tighten(path: Path) -> None:
    """Make ``path`` 0600 (a file) or 0700 (a folder) when it is ours and grants group/other access."""
    with contextlib.suppress(OSError):
        st = os.stat(path)
        if st.st_mode & 0o077 and (not hasattr(os, "getuid") or st.st_uid == os.getuid()):
            os.chmod(path, PRIVATE_DIR_MODE if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (before a library opens it), else tighten it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        tighten(path)
    else:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.chmod(path, PRIVATE_FILE_MODE)


def make_tree_private(root: Path) -> None:
    """Every file under ``root`` 0600 and every folder 0700 (for directories written by libraries)."""
    for folder, dirs, files in os.walk(root):
        with contextlib.suppress(OSError):
            os.chmod(folder, PRIVATE_DIR_MODE)
        for name in files:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), PRIVATE_FILE_MODE)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]

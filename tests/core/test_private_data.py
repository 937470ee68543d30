"""Issue 10.14 and 10.5: user data files are 0600 in 0700 folders; personal data never names a log row."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from csassist import paths
from csassist.core.atomic import atomic_directory, atomic_write_text
from csassist.core.io.outbox import Outbox
from csassist.core.learn.feedback import FeedbackLog
from tests.core.test_feedback import make_event
from tests.hostile_corpus import PII_CONVERSATION_IDS


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The common default: without explicit modes, files come out 0644 and folders 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_feedback_log_and_its_wal_are_private() -> None:
    """At 7a33194 feedback.sqlite3 and -wal were 0644 in a 0755 data folder."""
    log = FeedbackLog()
    log.record(make_event())
    db = paths.feedback_db()
    wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
    assert wal.exists() and shm.exists()
    assert (_mode(db), _mode(wal), _mode(shm)) == (0o600, 0o600, 0o600)
    assert _mode(db.parent) == 0o700
    log.close()


def test_an_existing_world_readable_log_is_tightened() -> None:
    path = paths.feedback_db()
    FeedbackLog(path).close()
    os.chmod(path, 0o644)
    os.chmod(path.parent, 0o755)
    FeedbackLog(path).close()
    assert (_mode(path), _mode(path.parent)) == (0o600, 0o700)


def test_outbox_index_and_model_files_are_private(tmp_path: Path) -> None:
    Outbox().send("c-1", "Your refund is on its way.")
    assert _mode(paths.outbox_file()) == 0o600 and _mode(paths.data_dir()) == 0o700
    atomic_write_text(paths.index_dir() / "manifest.json", "{}")
    assert _mode(paths.index_dir() / "manifest.json") == 0o600 and _mode(paths.index_dir()) == 0o700
    with atomic_directory(paths.models_dir() / "intent" / "v0001") as tmp:
        (tmp / "weights.bin").write_bytes(b"x")  # as a library would write it: umask modes
        (tmp / "sub").mkdir()
        (tmp / "sub" / "config.json").write_text("{}")
    model = paths.models_dir() / "intent" / "v0001"
    assert [_mode(p) for p in (model, model / "weights.bin", model / "sub", model / "sub" / "config.json")] == [
        0o700,
        0o600,
        0o700,
        0o600,
    ]
    assert _mode(paths.models_dir()) == 0o700


@pytest.mark.parametrize("cid", PII_CONVERSATION_IDS)
def test_personal_data_used_as_conversation_id_is_not_stored(tmp_path: Path, cid: str) -> None:
    """Help desks key chats by e-mail or phone: such ids were stored raw in the feedback log."""
    path = tmp_path / "log.sqlite3"
    log = FeedbackLog(path)
    log.record(make_event(conversation_id=cid, turn=1))
    log.record(make_event(conversation_id=cid, turn=2))
    log.record(make_event(conversation_id="c-1042", turn=1))
    stored = [e["conversation_id"] for e in log.events()]
    assert stored[0] == stored[1] != cid and stored[0].startswith("pii-")  # still groups one conversation
    assert stored[2] == "c-1042"  # ordinary ids are kept
    assert [e["turn"] for e in log.events(conversation_id=cid)] == [1, 2]
    log.close()
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("log.sqlite3-*"))
    assert cid.encode() not in raw
    with sqlite3.connect(path) as conn:
        assert cid not in {row[0] for row in conn.execute("SELECT conversation_id FROM events")}


def test_a_folder_the_user_named_is_not_narrowed(tmp_path: Path) -> None:
    """``csassist index --out ./shared`` writes private files but leaves the user's own folder's mode."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    atomic_write_text(shared / "export.jsonl", "{}\n")
    assert _mode(shared) == 0o755 and _mode(shared / "export.jsonl") == 0o600

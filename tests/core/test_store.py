"""The one versioned model store: atomic save, promote, a rollback stack, older layouts, listing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from csassist import paths
from csassist.core.errors import CsassistError, DataError
from csassist.core.learn.store import ModelStore, adapter_store, intent_store


def _save(store: ModelStore, **meta: object) -> str:
    with store.save(**meta) as draft:  # type: ignore[arg-type]
        (draft.path / "meta.json").write_text("{}")
    assert draft.version is not None
    return draft.version.name


def test_save_names_versions_and_writes_metadata(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "s", "intent model", marker="meta.json")
    when = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)
    a = _save(store, base="all-MiniLM-L6-v2", metrics={"val_accuracy": 0.9, "curve": [1, 2]}, now=when)
    assert a == "v0001-20261130T043000Z"
    b = _save(store, parent=a, note="refit")
    assert b.startswith("v0002-")
    listed = store.versions()
    assert [v.name for v in listed] == [a, b]
    first = listed[0]
    assert first.kind == "intent model" and first.base == "all-MiniLM-L6-v2"
    assert first.created == "2026-11-30T04:30:00+00:00"
    assert dict(first.metrics) == {"val_accuracy": 0.9}  # only scalars: metadata stays small
    assert listed[1].parent == a and listed[1].note == "refit"
    assert store.current() is None  # saving never promotes


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "adapter")
    with pytest.raises(KeyboardInterrupt), store.save() as draft:
        (draft.path / "half").write_text("x")
        raise KeyboardInterrupt
    assert store.versions() == [] and list(tmp_path.iterdir()) == []


def test_rollback_is_a_stack_never_forward(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "intent model", marker="meta.json")
    v1, v2, v3 = (_save(store) for _ in range(3))
    with pytest.raises(CsassistError, match="nothing to roll back"):
        store.rollback()
    for name in (v1, v2, v3):
        store.promote(name)
    assert store.current().name == v3 and store.previous().name == v2  # type: ignore[union-attr]
    assert store.rollback().name == v2  # type: ignore[union-attr]
    assert store.rollback().name == v1  # type: ignore[union-attr]  # further back, not forward to v3
    assert store.rollback() is None  # past the first promotion: the base model
    assert store.current() is None and not (tmp_path / "current").exists()
    store.promote(v3)
    store.promote(v1)
    store.promote(v3)  # promoting again moves it to the top, listed once
    assert store.history() == [v1, v3]
    assert (tmp_path / "current").read_text().strip() == v3


def test_promote_refuses_unknown_or_incomplete(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "adapter", marker="adapter_config.json")
    (tmp_path / "v0001-x").mkdir()  # no marker, no version.json: a crashed copy by hand
    with pytest.raises(DataError, match="not a saved adapter"):
        store.promote("v0001-x")
    with pytest.raises(DataError, match="not a saved adapter"):
        store.promote("../etc")


def test_reads_the_older_two_pointer_layout(tmp_path: Path) -> None:
    for name in ("v0001-20260101T000000Z", "v0002-20260102T000000Z"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text("{}")
    (tmp_path / "v0002-20260102T000000Z" / "metrics.json").write_text(json.dumps({"val_accuracy": 0.8, "h": [1]}))
    (tmp_path / "current").write_text("v0002-20260102T000000Z\n")
    (tmp_path / "previous").write_text("v0001-20260101T000000Z\n")
    store = intent_store(tmp_path)
    current = store.current()
    assert current is not None and current.name == "v0002-20260102T000000Z"
    assert dict(current.metrics) == {"val_accuracy": 0.8} and current.created.startswith("2026-01-02")
    assert store.rollback().name == "v0001-20260101T000000Z"  # type: ignore[union-attr]
    assert not (tmp_path / "previous").exists()  # the stack is the truth from now on
    assert store.rollback() is None


def test_default_roots_are_the_user_models_dirs() -> None:
    assert intent_store().root == paths.intent_models_dir()
    assert adapter_store().root == paths.adapters_dir()


def test_unreadable_history_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable promotion history"):
        ModelStore(tmp_path, "adapter").current()

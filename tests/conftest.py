"""Shared fixtures: every test runs with CSASSIST_HOME in a temp dir and offline model loading."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.fakes import FakeEncoder  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_KB = REPO_ROOT / "kb"


@pytest.fixture(autouse=True)
def csassist_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point all user data at a fresh temp dir so no test touches the real home or another test."""
    home = tmp_path / "csassist-home"
    monkeypatch.setenv("CSASSIST_HOME", str(home))
    yield home


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    """A deterministic hashed bag-of-words encoder (64-d)."""
    return FakeEncoder()


@pytest.fixture(scope="session")
def real_encoder():  # type: ignore[no-untyped-def]
    """The real default embedder, loaded once per test session."""
    from csassist.core.workspace import Workspace
    from csassist.settings import Settings

    workspace = Workspace(Settings())  # defaults, not the developer's config.toml
    workspace.configure_threads(1)
    return workspace.encoder()

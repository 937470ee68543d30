"""Helpers for the Pilot tests: a deterministic app on the fake assistant, and a settle() helper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from csassist.core.learn.feedback import FeedbackLog
from csassist.core.types import Message
from csassist.settings import Settings
from csassist.ui.app import CsassistApp, make_app
from tests.ui.fakes import FakeAssistant, FakeOutbox

FIXED_NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC: a fixed clock keeps times and snapshots stable
SIZE = (140, 45)


async def settle(pilot: Any, app: CsassistApp, rounds: int = 3) -> None:
    """Let posted messages, workers and refreshes finish (a few rounds: workers post more messages)."""
    for _ in range(rounds):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


def customer(cid: str, text: str, name: str = "Ana", ts: float = FIXED_NOW - 90) -> Message:
    """A customer message at a fixed time."""
    return Message(cid, "customer", text, ts=ts, customer=name)


@pytest.fixture
def feedback(tmp_path: Path) -> Iterator[FeedbackLog]:
    """A real feedback log in the test's temp dir."""
    log = FeedbackLog(tmp_path / "feedback.sqlite3")
    yield log
    log.close()


@pytest.fixture
def app_factory(feedback: FeedbackLog) -> Callable[..., CsassistApp]:
    """Build an app on the fake assistant with a fixed clock and no timers."""

    def build(settings: Settings | None = None, **kwargs: Any) -> CsassistApp:
        kwargs.setdefault("assistant", FakeAssistant())
        kwargs.setdefault("outbox", FakeOutbox())
        kwargs.setdefault("feedback", feedback)
        kwargs.setdefault("clock", lambda: FIXED_NOW)
        kwargs.setdefault("tick", False)
        return make_app(settings or Settings(), **kwargs)

    return build

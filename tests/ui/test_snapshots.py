"""SVG snapshots (pytest-textual-snapshot) of the main screen, the help screen and two themes.

Deterministic: the fake assistant, a fixed clock, UTC, no interval timers, focus on the inbox.
Review a failing diff (``snapshot_report.html``) before running ``pytest --snapshot-update``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from csassist.settings import Settings, UISettings
from tests.ui.conftest import SIZE, customer, settle


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Message times render in local time: pin it."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def _inbox(pilot: Any) -> None:
    """Three customers, one angry; the first conversation selected with suggestion 1 in the composer."""
    app = pilot.app
    app.ingest(customer("c-1001", "Hi, my parcel 48213 never came. Tracking says delivered.", name="Maya Jensen"))
    app.ingest(customer("c-1002", "I am angry: the mugs arrived broken, I want a refund now", name="Oliver Brennan"))
    app.ingest(customer("c-1003", "forgot my password again [bold]help[/]", name="Ines Ruiz"))
    await settle(pilot, app)
    await pilot.press("1")
    await settle(pilot, app)
    for name, value in (("analyse", 4.0), ("retrieve", 3.0), ("first token", 120.0)):
        app.status.set_latency(name, value)  # measured values vary run to run
    await settle(pilot, app)


def _build(app_factory: Any, theme: str | None = None) -> Any:
    settings = Settings(ui=UISettings(theme=theme or "csassist-dark"))
    return app_factory(settings)


def test_main_screen(snap_compare: Any, app_factory: Any) -> None:
    """The inbox, transcript, suggestions (1 accepted into the composer) and the assist panel."""
    assert snap_compare(_build(app_factory), terminal_size=SIZE, run_before=_inbox)


def test_help_screen(snap_compare: Any, app_factory: Any) -> None:
    """The key map."""

    async def run_before(pilot: Any) -> None:
        await _inbox(pilot)
        await pilot.press("question_mark")
        await settle(pilot, pilot.app)

    assert snap_compare(_build(app_factory), terminal_size=SIZE, run_before=run_before)


def test_light_theme(snap_compare: Any, app_factory: Any) -> None:
    """csassist-light, sorted by urgency (the angry customer first)."""

    async def run_before(pilot: Any) -> None:
        await _inbox(pilot)
        await pilot.press("u")
        await settle(pilot, pilot.app)
        pilot.app.clear_notifications()
        await settle(pilot, pilot.app)

    assert snap_compare(_build(app_factory, "csassist-light"), terminal_size=SIZE, run_before=run_before)


def test_high_contrast_theme(snap_compare: Any, app_factory: Any) -> None:
    """csassist-high-contrast."""
    assert snap_compare(_build(app_factory, "csassist-high-contrast"), terminal_size=SIZE, run_before=_inbox)

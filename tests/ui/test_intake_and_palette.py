"""Feeds chosen from the CLI arguments, the HTTP intake end to end, the command palette, stats."""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.request
from pathlib import Path

from csassist.core.io.demo_replay import DemoReplay
from csassist.core.io.sources import JsonlFileSource
from csassist.settings import Settings
from csassist.ui.intake import ListenSource, ProblemRelay, build_intake
from csassist.ui.screens.stats import StatsScreen
from tests.ui.conftest import SIZE, customer, settle


def _args(**kw: object) -> argparse.Namespace:
    base = {"source": None, "follow": False, "listen": None, "no_demo": False, "speed": 1.0, "backend": None,
            "theme": None}
    return argparse.Namespace(**{**base, **kw})


def test_build_intake_from_arguments(tmp_path: Path) -> None:
    """No args -> demo; --source FILE -> file feed; --no-demo -> nothing; the outbox lives in the data dir."""
    demo = build_intake(_args(), Settings())
    assert [type(s) for s in demo.sources] == [DemoReplay] and demo.label == "demo replay"
    feed = tmp_path / "feed.jsonl"
    feed.write_text("", encoding="utf-8")
    filed = build_intake(_args(source=str(feed), follow=True), Settings())
    assert [type(s) for s in filed.sources] == [JsonlFileSource] and filed.label == str(feed)
    empty = build_intake(_args(no_demo=True), Settings())
    assert empty.sources == [] and empty.label == "no feed"
    assert str(empty.outbox.path).endswith("outbox.jsonl")


async def test_listen_intake_end_to_end(app_factory) -> None:  # type: ignore[no-untyped-def]
    """A POST with the bearer token shows up as a conversation; the token was announced."""
    notes: list[str] = []
    source = ListenSource("127.0.0.1:0", Settings(), notes.append)
    app = app_factory(sources=[source])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert any("bearer token" in n for n in notes)
        body = json.dumps({"conversation_id": "web-1", "text": "where is my parcel", "customer": "Zoe"}).encode()
        request = urllib.request.Request(source.server.messages_url, data=body, method="POST", headers={
            "Authorization": f"Bearer {source.server.token}", "Content-Type": "application/json"})
        status = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).status)
        assert status in (200, 202)
        for _ in range(50):
            await settle(pilot, app, rounds=1)
            if "web-1" in app.inbox.conversations:
                break
        conv = app.inbox.conversations["web-1"]
        assert conv.customer == "Zoe" and conv.analysis is not None
    assert source.server is not None


async def test_command_palette_switches_theme(app_factory) -> None:  # type: ignore[no-untyped-def]
    """ctrl+p, type, Enter: csassist's own palette commands work next to Textual's."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await settle(pilot, app)
        for char in "theme: csassist-light":
            await pilot.press("space" if char == " " else char)
        await settle(pilot, app)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.theme == "csassist-light"


async def test_stats_screen_after_a_send(app_factory) -> None:  # type: ignore[no-untyped-def]
    """s opens the statistics computed from the feedback log."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await settle(pilot, app)
        await pilot.press("1", "ctrl+s")
        await settle(pilot, app)
        await pilot.press("s")
        await settle(pilot, app)
        assert isinstance(app.screen, StatsScreen)
        assert app.screen.stats.total == 3 and app.screen.stats.counts["accepted"] == 1


def test_problem_relay_buffers_until_attached() -> None:
    """Problems reported before the app exists are kept for the start-up notices."""
    relay = ProblemRelay()
    relay("early")
    got: list[str] = []
    relay.target = got.append
    relay("late")
    assert relay.early == ["early"] and got == ["late"]

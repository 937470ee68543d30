"""Issue 12 end to end: fake Chatwoot + a real PostgreSQL + the app under Pilot.

A customer message arrives by polling, another by a signed webhook; the agent accepts a suggestion and
sends it; the reply reaches Chatwoot's messages endpoint exactly once; the feedback rows are in
PostgreSQL, redacted; ``finetune --from-log --dry-run --store`` counts the pair.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from csassist.core.io.chatwoot import WEBHOOK_PREFIX, ChatwootConnector
from csassist.core.io.chatwoot_api import ChatwootConfig
from csassist.core.io.listen import ListenServer
from csassist.core.io.outbox import Outbox
from csassist.core.learn.feedback import FeedbackLog
from csassist.ui.app import fan_out
from csassist.ui.screens.stats import StatsScreen
from csassist.ui.widgets.composer import Composer
from tests.fake_chatwoot import FakeChatwoot, post_webhook
from tests.ui.conftest import SIZE, settle

CARD = "4111 1111 1111 1111"


async def _until(pilot: Any, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until ``condition`` holds (sources and the sender are real threads)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_chatwoot_and_postgres_end_to_end(app_factory, pg_url: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                capsys) -> None:
    fake = FakeChatwoot()
    fake.add_conversation(12)
    fake.add_conversation(13, assigned=False)  # not polled: only its webhook brings it in
    fake.add_message(12, f"My parcel never came and my card {CARD} was charged", name="Ana Lima")
    feedback = FeedbackLog(tmp_path / "spool.sqlite3", url=pg_url, agent_id="sam")
    config = ChatwootConfig(url=fake.url, account_id=1, token="tok-agent", poll_interval_s=0.05,
                            webhook_secret="url-secret", webhook_hmac_secret="hmac-secret", timeout_s=2.0)
    connector = ChatwootConnector(config, ledger=tmp_path / "delivered.jsonl", outbox_path=tmp_path / "outbox.jsonl")
    outbox = Outbox(tmp_path / "outbox.jsonl", record_sink=fan_out([feedback.record_outbox, connector.sender.submit]))
    app = app_factory(outbox=outbox, feedback=feedback, sources=[connector.poller])
    try:
        async with app.run_test(size=SIZE) as pilot:
            with ListenServer(on_message=app.ingest, routes={WEBHOOK_PREFIX: connector.webhook}) as server:
                await _until(pilot, lambda: "cw-1-12" in app.inbox.conversations)  # by polling
                hooked = fake.add_message(13, "Do you ship to Norway?", name="Bo")
                status, _ = post_webhook(server.url + WEBHOOK_PREFIX + "url-secret", fake.webhook_event(hooked),
                                         hmac_secret="hmac-secret")
                assert status == 200
                await _until(pilot, lambda: "cw-1-13" in app.inbox.conversations)  # by the signed webhook
            assert app.inbox.conversations["cw-1-12"].customer == "Ana Lima"
            app.select("cw-1-12")
            await settle(pilot, app)
            await pilot.press("1")
            accepted = app.query_one(Composer).text
            assert accepted
            await pilot.press("ctrl+s")
            await settle(pilot, app)
            await _until(pilot, lambda: connector.sender.posted == 1)
            rounds = connector.poller.rounds
            await _until(pilot, lambda: connector.poller.rounds >= rounds + 3)  # our own reply comes back...
            agent_turns = [m for m in app.inbox.conversations["cw-1-12"].machine.messages if m.speaker == "agent"]
            assert [m.text for m in agent_turns] == [accepted]  # ...and is not shown twice
            assert feedback.flush(30), feedback.last_error
            await pilot.press("s")  # the stats screen: this agent's own numbers, read off the UI thread
            await _until(pilot, lambda: isinstance(app.screen, StatsScreen))
            assert app.screen.stats.total >= 3 and set(app.screen.stats.by_agent) == {"sam"}
            await pilot.press("escape")
    finally:
        connector.poller.stop()
        outbox.close()
    assert [(p["conversation"], p["content"], p["private"]) for p in fake.posted] == [(12, accepted, False)]
    assert feedback.flush(30), feedback.last_error
    feedback.close()
    fake.close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT outcome, agent_id, prompt, customer_text, final_text, model_versions "
                            "FROM events WHERE conversation_id = 'cw-1-12' ORDER BY slot").fetchall()
        outbox_rows = conn.execute("SELECT conversation_id, text FROM outbox").fetchall()
    assert rows and rows[0][0] == "accepted" and {r[1] for r in rows} == {"sam"}
    assert CARD not in json.dumps(rows) and CARD.replace(" ", "") not in json.dumps(rows)
    assert rows[0][3] and "card" in rows[0][3]  # the customer's text is there, redacted
    assert outbox_rows == [("cw-1-12", accepted)]
    from csassist.cli import main

    assert main(["finetune", "--from-log", "--dry-run", "--json", "--store", pg_url]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 1

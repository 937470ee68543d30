"""The app on the real engine: first-run indexing in a worker, then a message end to end.

Uses a three-article KB (tests/ui/fixtures/kb) so the real embedder indexes it in about a second;
the full demo KB is exercised by the tmux smoke test and bench/ui_latency.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.widgets import Collapsible

from csassist.core.io.outbox import Outbox, read_outbox
from csassist.settings import GenerationSettings, RetrievalSettings, Settings
from csassist.ui.app import make_app
from csassist.ui.widgets.assist_panel import AssistPanel
from csassist.ui.widgets.composer import Composer
from csassist.ui.widgets.suggestions import SuggestionList
from csassist.ui.workers import default_factory
from tests.ui.conftest import SIZE, customer, settle

FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb"


@pytest.mark.real_model
async def test_first_run_indexes_then_suggests_and_sends(tmp_path: Path, feedback, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No index yet: the app builds it (notified), then shows intent + KB + an extractive reply; send it.

    The reply model loads in a second phase; here it is missing (as on a machine without the model),
    which must be a notification and extractive-only suggestions, not a failure.
    """
    import csassist.core.reply.generation as generation
    from csassist.core.errors import ModelMissingError

    def no_model(settings: Settings) -> None:
        raise ModelMissingError("no local model here")

    monkeypatch.setattr(generation, "load_generator", no_model)
    settings = Settings(retrieval=RetrievalSettings(kb_dir=str(FIXTURE_KB), index_dir=str(tmp_path / "index")),
                        generation=GenerationSettings(backend="local"))
    outbox = Outbox(tmp_path / "outbox.jsonl")
    app = make_app(settings, assistant_factory=default_factory, outbox=outbox, feedback=feedback, tick=False)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "Hi, my parcel never arrived, order 48213. Where is it??"))  # before the engine
        deadline = time.monotonic() + 240
        while app.assistant is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert app.assistant is not None, app.notice_log
        assert any("First run: indexing" in n for n in app.notice_log)
        assert any("KB indexed: 3 chunks" in n for n in app.notice_log)
        assert (tmp_path / "index" / "manifest.json").exists()
        assert app.assistant.describe().backend == "extractive"

        await settle(pilot, app, rounds=5)  # the message that waited for the engine is analysed now
        assert any("Reply model unavailable (no local model here)" in n.message for n in app._notifications)
        conv = app.inbox.conversations["c1"]
        assert conv.analysis is not None and conv.passages
        assert conv.passages[0].article_id == "missing-parcel"
        assert conv.analysis.intent.top[0].intent == "missing_parcel"
        titles = [c.title for c in app.query_one(AssistPanel).query(Collapsible)]
        assert str(titles[0]).startswith("1. My parcel has not arrived")
        first = app.query_one(SuggestionList).card_text(0)
        assert "Most parcels arrive within 3-5 working days" in first and "48213" in first  # grounded
        await pilot.press("1", "ctrl+s")
        await settle(pilot, app)
        assert app.query_one(Composer).text == ""
    records = read_outbox(tmp_path / "outbox.jsonl")
    assert records[0]["text"] == first and records[0]["outcome"] == "accepted"
    assert [e["outcome"] for e in feedback.events()] == ["accepted"]
    assert next(iter(feedback.events()))["source_ids"] == ["missing-parcel"]

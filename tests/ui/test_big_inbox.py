"""A big inbox stays cheap: the list renders only what is on screen, and growing content never reflows.

Issue 10 item 10: 3,000 conversation ids posted in 2.6 s made each keypress wait 6-7 s, because every
inbox update rebuilt and re-wrapped all rows.  These tests check the *structure* that keeps it fast
(bounded rendering, no screen reflow per row or per transcript line); the timings themselves come
from ``bench/ui_latency.py --inbox 3000``, never from a test.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen

from csassist.ui.widgets.conversation_list import ConversationList
from csassist.ui.widgets.transcript import Transcript
from tests.ui.conftest import SIZE, customer, settle

BIG = 3000


def screen_text(app: Any) -> str:
    """The composed screen as plain text."""
    return "\n".join("".join(s.text for s in strip) for strip in app.screen._compositor.render_strips())


async def test_three_thousand_conversations_render_only_visible_rows(app_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """3,000 rows in the state, about one screenful built; the cursor row is scrolled into view."""
    built: list[int] = []
    original = ConversationList._row

    def counting_row(self: ConversationList, key: Any, cursor: bool) -> Any:
        built.append(1)
        return original(self, key, cursor)

    monkeypatch.setattr(ConversationList, "_row", counting_row)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        for i in range(BIG):
            app.ingest(customer(f"c{i:04d}", f"where is my parcel {i}", name=f"Customer {i:04d}"))
        await settle(pilot, app)
        inbox = app.query_one(ConversationList)
        assert len(inbox.keys) == BIG and app.selected == "c0000"
        visible_rows = inbox.size.height - 1
        assert len(built) < 10 * visible_rows, len(built)  # a few repaints of one screen, not 3,000 rows

        app.select("c2500")  # far down: the list scrolls so that the cursor row is on screen
        await settle(pilot, app)
        assert inbox.key_at_cursor() == "c2500"
        assert "Customer 2500" in screen_text(app)
        assert "Customer 0000" not in screen_text(app)
        await pilot.press("down", "down")
        await settle(pilot, app)
        assert app.selected == "c2502" and "Customer 2502" in screen_text(app)
        assert "Customer" in screen_text(app).splitlines()[1]  # header line stays at the top


async def test_growing_inbox_and_transcript_do_not_reflow_the_screen(app_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """New rows and new transcript lines repaint their widget; the screen is not laid out again for each."""
    layouts: list[int] = []
    original = Screen._refresh_layout

    def counting_layout(self: Screen[Any], *args: Any, **kwargs: Any) -> None:
        layouts.append(1)
        original(self, *args, **kwargs)

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        for i in range(60):  # overflow both the inbox and the transcript: scrollbars appear
            app.ingest(customer(f"c{i:02d}", "hello"))
            app.ingest(customer("c00", f"line {i}"))
        await settle(pilot, app)
        monkeypatch.setattr(Screen, "_refresh_layout", counting_layout)
        for i in range(60, 120):
            app.ingest(customer(f"c{i:03d}", "hello"))
            app.ingest(customer("c00", f"line {i}"))
            await pilot.pause()
        await settle(pilot, app)
        assert len(layouts) <= 10, len(layouts)  # was one per frame with a new row or line
        transcript = app.query_one(Transcript)
        assert transcript.show_vertical_scrollbar
        assert transcript.scroll_y == transcript.max_scroll_y  # still following the newest message
        assert "line 119" in screen_text(app)
        assert len(app.query_one(ConversationList).keys) == 120

"""The inbox: one row per conversation with urgency, customer, intent, unread count and waiting time.

A virtualised Line API widget (Textual's ``ScrollView``): only the rows on screen are ever built and
rendered, so an inbox of 3,000 conversations costs what one screenful costs.  The earlier version
joined every row into one ``Text`` in a ``Static``; at 3,000 conversations each update re-built and
re-wrapped all of them and a keypress waited 6-7 s behind the queue (issue 10).

:meth:`sync` only stores the ordered conversations (references, no copies) and repaints when a
*visible* row changed; :meth:`render_line` builds a row on demand from the live state, with a small
cache of rendered strips keyed on what the row shows.  The header is line 0 and stays put while the
rows scroll under it.  The cursor is the selected conversation; the agent moves it with the arrow
keys / j / k or a click, and the app keeps it on the selected row when the order changes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from rich.cells import set_cell_size
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message as TextualMessage
from textual.scroll_view import ScrollView
from textual.strip import Strip

from csassist.ui.render import format_wait, one_line, theme_colour
from csassist.ui.state import ConversationState
from csassist.ui.widgets.scrolling import update_scrollbars, virtual_size_without_reflow

URGENCY_GLYPH = {0: "·", 1: "▲", 2: "‼"}
URGENCY_VARIABLE = {0: "csassist-normal", 1: "csassist-elevated", 2: "csassist-urgent"}
WIDTHS = (2, 15, 15, 4, 5)  # urgency, customer, intent, new, wait
HEADER = ("!", "Customer", "Intent", "New", "Wait")
ROW_WIDTH = sum(WIDTHS) + len(WIDTHS)  # each cell is followed by a space
#: Rendered rows kept between repaints (a few screens' worth; cleared when it grows past this).
STRIP_CACHE_SIZE = 512

#: What one row shows: (glyph rank, customer, intent, corrected, unread, wait) - equal keys draw equal rows.
RowKey = tuple[int, str, str, bool, int, str]


def _cell(text: str, width: int) -> str:
    """``text`` padded or cut to exactly ``width`` terminal cells (wide characters count double)."""
    return set_cell_size(text, width) + " "


class ConversationList(ScrollView, can_focus=True):
    """A focusable, virtualised list of rows; :meth:`sync` points it at the inbox state."""

    DEFAULT_CSS = """
    ConversationList {
        overflow-x: hidden;
        scrollbar-size-vertical: 1;  /* the rows fill the width: the last column's spare cell holds it */
    }
    """
    virtual_size = virtual_size_without_reflow()  # a new row repaints the list, it does not reflow the screen

    BINDINGS = [
        Binding("down,j", "cursor(1)", "Down", show=False, id="list.down", tooltip="Inbox: next conversation"),
        Binding("up,k", "cursor(-1)", "Up", show=False, id="list.up", tooltip="Inbox: previous conversation"),
    ]

    @dataclass
    class Chosen(TextualMessage):
        """The agent moved to (or clicked) a conversation."""

        conversation_id: str

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.keys: list[str] = []
        self.cursor = 0
        self._conversations: list[ConversationState] = []
        self._now = 0.0
        self._shown: tuple[object, ...] = ()  # what the visible rows showed at the last repaint
        self._strips: dict[tuple[object, ...], Strip] = {}

    # -- state -----------------------------------------------------------------------------
    def sync(self, conversations: list[ConversationState], selected: str | None, now: float) -> None:
        """Show ``conversations`` in this order with the cursor on ``selected``.

        Costs O(n) list work (ids, the cursor position) but renders nothing: rows are drawn when a
        repaint asks for them, and a repaint is requested only when a visible row changed.
        """
        self._conversations = conversations
        self._now = now
        self.keys = [c.conversation_id for c in conversations]
        if selected is not None:
            with suppress(ValueError):  # not in the list: the cursor stays where it was
                self.cursor = self.keys.index(selected)
        self.cursor = max(0, min(self.cursor, len(self.keys) - 1))
        self._update_size()
        self._repaint_if_changed()

    def _update_size(self) -> None:
        """The scrollable height is every row plus the header line."""
        size = Size(0, len(self._conversations) + 1)
        if size != self.virtual_size:
            self.virtual_size = size

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        """Scrollbars follow the growing inbox without a screen layout."""
        update_scrollbars(self, new)

    def _row_key(self, conv: ConversationState) -> RowKey:
        """What the row of ``conv`` shows now (cheap: no rendering)."""
        wait = self._now - conv.waiting_since if conv.waiting_since else None
        return (conv.urgency_rank, conv.customer or conv.conversation_id, conv.intent_label,
                bool(conv.intent_correction), conv.unread, format_wait(wait))

    def _visible_range(self) -> range:
        """Indexes of the rows on screen (the header takes the first line)."""
        first = int(self.scroll_offset.y)
        return range(first, min(len(self._conversations), first + max(self.size.height - 1, 0)))

    def _repaint_if_changed(self) -> None:
        """Keep the cursor visible and repaint only when something on screen changed."""
        first, height = int(self.scroll_offset.y), max(self.size.height - 1, 1)  # the header covers line 0
        target = first
        if self.cursor < first:
            target = self.cursor
        elif self.cursor >= first + height:
            target = self.cursor - height + 1
        if target != first:
            self.scroll_to(y=target, animate=False, immediate=True)
        frame = (self.cursor, self.has_focus, self.app.theme, int(self.scroll_offset.y), self.size)
        visible = self._visible_range()
        shown = (frame, *(self._row_key(self._conversations[i]) for i in visible))
        if shown == self._shown:
            return
        previous, self._shown = self._shown, shown
        if previous and previous[0] == frame and len(previous) == len(shown):
            # Same rows in the same place: repaint only the lines that changed (an unread count, a new
            # intent) - one line of work per arrival instead of the whole screenful.
            for offset, index in enumerate(visible, start=1):
                if previous[offset] != shown[offset]:
                    self.refresh_lines(index + 1)  # row i is virtual line i + 1 (the header is line 0)
            return
        self.refresh()

    # -- rendering ---------------------------------------------------------------------------
    def render_lines(self, crop: Region) -> list[Strip]:
        """Look up the widget's style once per repaint (``rich_style`` walks the DOM: ~1 ms a call)."""
        self._base = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the viewport: the header, or the row under it at the current scroll."""
        width = self.size.width
        base = getattr(self, "_base", None) or self.rich_style
        if y == 0:
            return self._strip(("header",), self._header, base, width)
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < len(self._conversations):
            return Strip.blank(width, base)
        conv = self._conversations[index]
        key = self._row_key(conv)
        cursor = index == self.cursor
        return self._strip((key, cursor, cursor and self.has_focus), lambda: self._row(key, cursor), base, width)

    def _strip(self, key: tuple[object, ...], build: Callable[[], Text], base: Style, width: int) -> Strip:
        """A rendered line from the cache, or built by ``build()`` and cached (theme and width in the key)."""
        cache_key = (*key, self.app.theme, base, width)
        strip = self._strips.get(cache_key)
        if strip is None:
            if len(self._strips) >= STRIP_CACHE_SIZE:
                self._strips.clear()
            text = build()
            text.stylize_before(base)
            strip = Strip(text.render(self.app.console), text.cell_len).crop_extend(0, width, base)
            self._strips[cache_key] = strip
        return strip

    @staticmethod
    def _header() -> Text:
        """The column titles."""
        return Text("".join(_cell(title, width) for title, width in zip(HEADER, WIDTHS, strict=True)), style="bold")

    def _row(self, key: RowKey, cursor: bool) -> Text:
        """One row; the customer name and intent are untrusted and go through ``one_line``."""
        rank, customer, intent, corrected, unread, wait = key
        colour = theme_colour(self.app.theme_variables, URGENCY_VARIABLE.get(rank, ""))
        row = Text()
        row.append(_cell(URGENCY_GLYPH.get(rank, "?"), WIDTHS[0]), style=f"bold {colour}".strip())
        row.append(_cell(one_line(customer, WIDTHS[1]), WIDTHS[1]))
        row.append(_cell(one_line(intent, WIDTHS[2]), WIDTHS[2]), style="italic" if corrected else "")
        row.append(_cell((str(unread) if unread else "").rjust(WIDTHS[3] - 1), WIDTHS[3]), style="bold")
        row.append(set_cell_size(wait, WIDTHS[4]))
        if cursor:
            if self.has_focus:
                background = theme_colour(self.app.theme_variables, "background") or "black"
                primary = theme_colour(self.app.theme_variables, "primary") or "blue"
                row.stylize(f"bold {background} on {primary}")
            else:
                row.stylize("reverse")
        return row

    def row_texts(self) -> list[str]:
        """Every row as plain text (tests read them; the screen only ever renders the visible ones)."""
        return [self._row(self._row_key(c), False).plain for c in self._conversations]

    # -- input -------------------------------------------------------------------------------
    def key_at_cursor(self) -> str | None:
        """The conversation id under the cursor (None when empty)."""
        return self.keys[self.cursor] if 0 <= self.cursor < len(self.keys) else None

    def _choose(self, index: int) -> None:
        """Put the cursor on row ``index`` and tell the app."""
        self.cursor = index
        self._repaint_if_changed()
        self.post_message(self.Chosen(self.keys[index]))

    def action_cursor(self, step: int) -> None:
        """Arrow keys / j / k: move and select at once."""
        if self.keys:
            self._choose(max(0, min(len(self.keys) - 1, self.cursor + step)))

    def on_click(self, event: events.Click) -> None:
        """A click on a row selects that conversation (the header line does nothing)."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = int(self.scroll_offset.y) + offset.y - 1
        if 0 <= index < len(self.keys):
            self._choose(index)

    def on_resize(self) -> None:
        """A new size shows a different number of rows (ScrollView repaints scrolled lines itself)."""
        self._shown = ()

    def on_focus(self) -> None:
        """The cursor colour shows where the keys go."""
        self._repaint_if_changed()

    def on_blur(self) -> None:
        """Dim the cursor while the composer has the keys."""
        self._repaint_if_changed()

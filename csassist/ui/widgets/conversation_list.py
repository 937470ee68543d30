"""The inbox: one row per conversation with urgency, customer, intent, unread count and waiting time.

A light custom widget rather than a DataTable: the inbox changes many times a second under load, and
DataTable re-renders every line on each cell update (about 30 ms a frame here), while one ``Text``
rendered by a ``Static`` costs about a millisecond.  The cursor is the selected conversation; the
agent moves it with the arrow keys / j / k, Enter, or a click, and the app keeps it on the selected
row when the order changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.message import Message as TextualMessage
from textual.widgets import Static

from csassist.ui.render import format_wait, one_line
from csassist.ui.state import ConversationState

URGENCY_GLYPH = {0: "·", 1: "▲", 2: "‼"}
URGENCY_VARIABLE = {0: "csassist-normal", 1: "csassist-elevated", 2: "csassist-urgent"}
WIDTHS = (2, 15, 15, 4, 5)  # urgency, customer, intent, new, wait
HEADER = ("!", "Customer", "Intent", "New", "Wait")


class ConversationList(VerticalScroll, can_focus=True):
    """A focusable, scrollable list of rows; :meth:`sync` redraws it from the inbox state."""

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
        self._rows: list[Text] = []
        self._shown: tuple[str, ...] = ()
        self._line_count = -1

    def compose(self) -> ComposeResult:
        """A header line and the rows, both plain Statics (no markup)."""
        yield Static(self._line(HEADER, bold=True), id="inbox-header", markup=False)
        yield Static("", id="inbox-rows", markup=False)

    @staticmethod
    def _line(cells: tuple[str, ...] | list[str], bold: bool = False) -> Text:
        """Fixed-width columns (cells are already made safe by the caller)."""
        text = Text(style="bold" if bold else "")
        for cell, width in zip(cells, WIDTHS, strict=True):
            text.append(cell[:width].ljust(width) + " ")
        return text

    def _row(self, conv: ConversationState, now: float) -> Text:
        """One row; the customer name and intent are untrusted and go through ``one_line``."""
        rank = conv.urgency_rank
        colour = self.app.theme_variables.get(URGENCY_VARIABLE[rank], "")
        wait = now - conv.waiting_since if conv.waiting_since else None
        row = Text()
        row.append(URGENCY_GLYPH[rank].ljust(WIDTHS[0]) + " ", style=f"bold {colour}".strip())
        row.append(one_line(conv.customer or conv.conversation_id, WIDTHS[1]).ljust(WIDTHS[1]) + " ")
        row.append(one_line(conv.intent_label, WIDTHS[2]).ljust(WIDTHS[2]) + " ",
                   style="italic" if conv.intent_correction else "")
        row.append((str(conv.unread) if conv.unread else "").rjust(WIDTHS[3] - 1).ljust(WIDTHS[3]) + " ", style="bold")
        row.append(format_wait(wait).ljust(WIDTHS[4]))
        return row

    def sync(self, conversations: list[ConversationState], selected: str | None, now: float) -> None:
        """Show ``conversations`` in this order with the cursor on ``selected`` (no-op when unchanged)."""
        self.keys = [c.conversation_id for c in conversations]
        self._rows = [self._row(c, now) for c in conversations]
        if selected in self.keys:
            self.cursor = self.keys.index(selected)
        self._redraw()

    def _redraw(self) -> None:
        """Render rows with the cursor highlighted; skip when nothing visible changed."""
        signature = (*(r.plain for r in self._rows), str(self.cursor), str(self.has_focus), self.app.theme)
        if signature == self._shown:
            return
        self._shown = signature
        colours = self.app.theme_variables
        highlight = (f"bold {colours.get('background', 'black')} on {colours.get('primary', 'blue')}"
                     if self.has_focus else "reverse")
        lines = []
        for index, row in enumerate(self._rows):
            line = row.copy()
            if index == self.cursor:
                line.stylize(highlight)
            lines.append(line)
        rows = self.query_one("#inbox-rows", Static)
        rows.update(Text("\n").join(lines), layout=len(lines) != self._line_count)  # re-layout only when it grows
        self._line_count = len(lines)
        if self._rows:  # keep the cursor row visible (line 0 is the header)
            self.scroll_to_region(Region(0, self.cursor + 1, 1, 1), animate=False, immediate=False)

    def row_texts(self) -> list[str]:
        """The rows as plain text (tests read them)."""
        return [r.plain for r in self._rows]

    def key_at_cursor(self) -> str | None:
        """The conversation id under the cursor (None when empty)."""
        return self.keys[self.cursor] if 0 <= self.cursor < len(self.keys) else None

    def action_cursor(self, step: int) -> None:
        """Arrow keys / j / k: move and select at once."""
        if self.keys:
            self.cursor = max(0, min(len(self.keys) - 1, self.cursor + step))
            self._redraw()
            self.post_message(self.Chosen(self.keys[self.cursor]))

    def on_click(self, event: events.Click) -> None:
        """A click on a row selects that conversation."""
        widget, _ = self.screen.get_widget_at(event.screen_x, event.screen_y)
        if widget is not self.query_one("#inbox-rows"):
            return
        row = event.screen_y - widget.region.y
        if 0 <= row < len(self.keys):
            self.cursor = row
            self._redraw()
            self.post_message(self.Chosen(self.keys[row]))

    def on_focus(self) -> None:
        """The cursor colour shows where the keys go."""
        self._redraw()

    def on_blur(self) -> None:
        """Dim the cursor while the composer has the keys."""
        self._redraw()

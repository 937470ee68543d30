"""The inbox: one row per conversation with urgency, customer, intent, unread count and waiting time."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message as TextualMessage
from textual.widgets import DataTable

from csassist.ui.render import format_wait, one_line
from csassist.ui.state import ConversationState

URGENCY_GLYPH = {0: "·", 1: "▲", 2: "‼"}
URGENCY_VARIABLE = {0: "csassist-normal", 1: "csassist-elevated", 2: "csassist-urgent"}
COLUMNS = ("urgency", "customer", "intent", "unread", "wait")


class ConversationList(DataTable[Text]):
    """A row-cursor DataTable keyed by conversation id; moving the cursor selects the conversation."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="list.down", tooltip="Inbox: next row (also ↓)"),
        Binding("k", "cursor_up", "Up", show=False, id="list.up", tooltip="Inbox: previous row (also ↑)"),
    ]

    @dataclass
    class Chosen(TextualMessage):
        """The agent moved to (or clicked) a conversation."""

        conversation_id: str

    _shown: dict[str, list[str]] = {}

    def on_mount(self) -> None:
        """Columns are fixed; rows come from :meth:`sync`."""
        self._shown = {}
        self.cursor_type = "row"
        self.zebra_stripes = False
        self.add_column("!", width=1, key="urgency")
        self.add_column("Customer", width=12, key="customer")
        self.add_column("Intent", width=13, key="intent")
        self.add_column("New", width=3, key="unread")
        self.add_column("Wait", width=4, key="wait")

    def _cells(self, conv: ConversationState, now: float) -> list[Text]:
        """The five cells of one row (customer names are untrusted: rendered as literal text)."""
        rank = conv.urgency_rank
        colour = self.app.theme_variables.get(URGENCY_VARIABLE[rank], "")
        name = conv.customer or conv.conversation_id
        wait = now - conv.waiting_since if conv.waiting_since else None
        return [
            Text(URGENCY_GLYPH[rank], style=f"bold {colour}".strip()),
            Text(one_line(name, 12)),
            Text(one_line(conv.intent_label, 13), style="italic" if conv.intent_correction else ""),
            Text(str(conv.unread) if conv.unread else "", style="bold"),
            Text(format_wait(wait)),
        ]

    def sync(self, conversations: list[ConversationState], selected: str | None, now: float) -> None:
        """Show ``conversations`` in this order; only cells whose content changed are touched."""
        keys = [c.conversation_id for c in conversations]
        current = [str(row.key.value) for row in self.ordered_rows]
        if keys != current:
            self.clear()
            self._shown = {}
            for conv in conversations:
                cells = self._cells(conv, now)
                self.add_row(*cells, key=conv.conversation_id)
                self._shown[conv.conversation_id] = [c.plain for c in cells]
        else:
            for conv in conversations:
                cells = self._cells(conv, now)
                before = self._shown.get(conv.conversation_id, [])
                for index, (column, cell) in enumerate(zip(COLUMNS, cells, strict=True)):
                    if index >= len(before) or before[index] != cell.plain or index == 0:
                        self.update_cell(conv.conversation_id, column, cell)
                self._shown[conv.conversation_id] = [c.plain for c in cells]
        if selected in keys:
            index = keys.index(selected)
            if self.cursor_row != index:
                self.move_cursor(row=index, animate=False)

    def key_at_cursor(self) -> str | None:
        """The conversation id under the cursor (None when empty)."""
        if not self.row_count:
            return None
        return str(self.ordered_rows[self.cursor_row].key.value)

    def _choose_cursor(self) -> None:
        """Tell the app the agent moved to the row under the cursor."""
        key = self.key_at_cursor()
        if key is not None:
            self.post_message(self.Chosen(key))

    # Selection follows *the agent's* cursor moves only (keys and clicks), never the programmatic
    # moves that keep the cursor on the selected row while rows are re-sorted.
    def action_cursor_down(self) -> None:
        """Down arrow / j: next row, selected at once."""
        super().action_cursor_down()
        self._choose_cursor()

    def action_cursor_up(self) -> None:
        """Up arrow / k: previous row, selected at once."""
        super().action_cursor_up()
        self._choose_cursor()

    def on_click(self, event: events.Click) -> None:
        """A click on a row selects that conversation."""
        row = event.style.meta.get("row")
        if isinstance(row, int) and 0 <= row < self.row_count:
            self.post_message(self.Chosen(str(self.ordered_rows[row].key.value)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row also selects it."""
        event.stop()
        self.post_message(self.Chosen(str(event.row_key.value)))

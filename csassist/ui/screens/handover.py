"""The hand-over summary of the selected conversation (``h``): goal, facts, said, promised, open."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from csassist.core.reply.summary import HandoverSummary
from csassist.ui.render import safe_text


class HandoverScreen(ModalScreen[None]):
    """Shows :meth:`HandoverSummary.to_text` (every line ends in ``[#n]``, the message it comes from)."""

    DEFAULT_CSS = """
    HandoverScreen { align: center middle; }
    HandoverScreen > VerticalScroll { width: 90%; height: 80%; border: round $accent; padding: 0 1;
                                      background: $surface; }
    """
    BINDINGS = [Binding("escape,q,h", "close", "Close", id="handover.close", tooltip="Back to the inbox")]

    def __init__(self, summary: HandoverSummary) -> None:
        super().__init__()
        self.summary = summary

    def compose(self) -> ComposeResult:
        """One scrollable block of plain text (message text is data: never markup)."""
        with VerticalScroll(id="handover-body") as body:
            body.border_title = "Hand-over summary (Esc closes)"
            yield Static(safe_text(self.summary.to_text()), markup=False)

    def action_close(self) -> None:
        """Back to the inbox."""
        self.dismiss(None)

"""Reject a suggestion with a reason: one key per reason (from ``settings.ui.reject_reasons``)."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from csassist.ui.render import safe_text


class RejectScreen(ModalScreen[str | None]):
    """Returns the chosen reason, or None when cancelled with Escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="reject.cancel", tooltip="Keep the suggestion")]

    def __init__(self, reasons: tuple[str, ...], slot: int) -> None:
        super().__init__()
        self.reasons = reasons or ("not useful",)
        self.slot = slot

    def compose(self) -> ComposeResult:
        """The reasons numbered 1..N."""
        with Vertical(id="dialog"):
            yield Label(f"Reject suggestion {self.slot + 1}: why? (press a number, Esc cancels)")
            yield OptionList(
                *[Option(safe_text(f"{i}. {reason}", max_chars=200), id=str(i - 1)) for i, reason in enumerate(self.reasons[:9], 1)],
                id="reasons",
            )

    def on_key(self, event: events.Key) -> None:
        """A digit chooses that reason directly."""
        if event.character and event.character.isdigit():
            index = int(event.character) - 1
            if 0 <= index < min(len(self.reasons), 9):
                event.stop()
                self.dismiss(self.reasons[index])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Enter or a click on a reason chooses it."""
        self.dismiss(self.reasons[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        """Close without rejecting."""
        self.dismiss(None)

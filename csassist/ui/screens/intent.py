"""Correct the intent of the selected conversation: pick a known label or type a new one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from csassist.ui.render import one_line, safe_text


class IntentScreen(ModalScreen[str | None]):
    """Returns the corrected intent label, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="intent.cancel", tooltip="Keep the predicted intent")]

    def __init__(self, candidates: list[str], current: str) -> None:
        super().__init__()
        self.candidates = list(dict.fromkeys(c for c in candidates if c))
        self.current = current

    def compose(self) -> ComposeResult:
        """A filter/free-text input above the label list."""
        with Vertical(id="dialog"):
            yield Label(safe_text(f"Correct the intent (now: {one_line(self.current or 'none', 40)}). "
                                  "Type to filter, Enter to choose."), markup=False)
            yield Input(placeholder="intent label", id="intent-input")
            yield OptionList(*[Option(safe_text(c, max_chars=200), id=c) for c in self.candidates], id="intent-options")

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter the list by what was typed."""
        options = self.query_one(OptionList)
        options.clear_options()
        needle = event.value.strip().lower()
        options.add_options([Option(safe_text(c, max_chars=200), id=c) for c in self.candidates if needle in c.lower()])
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the input: the highlighted option, else the typed text as a new label."""
        options = self.query_one(OptionList)
        if options.highlighted is not None and options.option_count:
            self.dismiss(str(options.get_option_at_index(options.highlighted).id))
        elif event.value.strip():
            self.dismiss(event.value.strip())

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A click (or Enter in the list) on a label."""
        self.dismiss(str(event.option.id))

    def action_cancel(self) -> None:
        """Close without changing anything."""
        self.dismiss(None)

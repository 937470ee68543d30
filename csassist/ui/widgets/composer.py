"""Where the reply is edited before sending: a TextArea that hands focus back with Escape."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import TextArea


class Composer(TextArea):
    """The reply being written; Escape returns to the keyboard shortcuts (which type here otherwise)."""

    BINDINGS = [
        Binding("escape", "leave", "Done editing", id="composer.leave",
                tooltip="Stop editing and use the single-key shortcuts again"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)  # type: ignore[arg-type]

    def action_leave(self) -> None:
        """Move focus back to the conversation list."""
        self.screen.query_one("#conversations").focus()

    def set_reply(self, text: str) -> None:
        """Replace the whole text (a suggestion accepted into the composer) with the cursor at the end."""
        self.load_text(text)
        self.move_cursor(self.document.end)

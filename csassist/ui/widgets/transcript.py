"""The selected conversation's messages, newest at the bottom; customer text is always literal."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.widgets import RichLog

from csassist.core.types import Message
from csassist.ui.render import clock_time, safe_text, theme_colour
from csassist.ui.widgets.scrolling import update_scrollbars, virtual_size_without_reflow


class Transcript(RichLog):
    """An append-only log of message blocks; switching conversations rewrites it (no screen reflow per line)."""

    virtual_size = virtual_size_without_reflow()  # a new line repaints the log, it does not reflow the screen
    MAX_REPLAYED = 12  # messages re-rendered when a conversation is opened (older ones stay in the state)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, auto_scroll=True, min_width=20, **kwargs)  # type: ignore[arg-type]
        self.shown_id: str | None = None
        self.shown_count = 0

    def watch_virtual_size(self, old: Size, new: Size) -> None:
        """Scrollbars follow the growing log without a screen layout."""
        update_scrollbars(self, new)

    def _block(self, message: Message) -> Text:
        """Header line (speaker, name, time) plus the literal body."""
        who = "You" if message.speaker == "agent" else (message.customer or "Customer")
        var = "csassist-agent" if message.speaker == "agent" else "csassist-customer"
        colour = theme_colour(self.app.theme_variables, var)
        header = Text.assemble(safe_text(who, style=f"bold {colour}".strip(), max_chars=80),
                               Text(f"  {clock_time(message.ts)}", style="dim"))
        return Text("\n").join([header, safe_text(message.text), Text("")])  # a blank line after each

    def show(self, conversation_id: str | None, messages: list[Message]) -> None:
        """Display ``messages`` of ``conversation_id``; only new ones are appended when it is the same."""
        blocks: list[Text] = []
        if conversation_id != self.shown_id or len(messages) < self.shown_count:
            self.clear()
            self.shown_id = conversation_id
            self.shown_count = max(0, len(messages) - self.MAX_REPLAYED)  # switching stays fast
            if self.shown_count:
                blocks.append(Text(f"… {self.shown_count} earlier messages", style="dim italic"))
        blocks += [self._block(message) for message in messages[self.shown_count:]]
        if blocks:  # one write: one wrap pass, one scrollbar update, one scroll to the end
            self.write(Text("\n").join(blocks))
        self.shown_count = len(messages)

    def plain_text(self) -> str:
        """What is on the log now as plain text (tests and the tmux smoke test read it)."""
        return "\n".join(line.text for line in self.lines)

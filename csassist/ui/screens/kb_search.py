"""Search the knowledge base by hand; the search runs in a thread worker so typing never stalls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static
from textual.worker import get_current_worker

from csassist.core.types import Passage

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.engine import Engine
from csassist.ui.render import one_line, safe_text


class KBSearchScreen(ModalScreen[str | None]):
    """Type a query, see the top hits; Enter on the input puts the best answer into the composer."""

    BINDINGS = [Binding("escape", "cancel", "Close", id="kb.close", tooltip="Back to the inbox")]

    def __init__(self, assistant: Engine | None, query: str = "") -> None:
        super().__init__()
        self.assistant = assistant
        self.initial = query
        self.hits: list[Passage] = []

    def compose(self) -> ComposeResult:
        """Query input above the results."""
        with Vertical(id="kb-dialog"):
            yield Label("Search the knowledge base — Enter puts the best answer in the composer, Esc closes")
            yield Input(value=self.initial, placeholder="e.g. my parcel never came", id="kb-query")
            yield VerticalScroll(Static("", id="kb-results", markup=False))

    def on_mount(self) -> None:
        """Search right away when opened with a query."""
        if self.initial:
            self.search(self.initial)

    def on_input_changed(self, event: Input.Changed) -> None:
        """Search as the agent types (the newest search cancels the previous one)."""
        self.search(event.value)

    @work(thread=True, exclusive=True, group="kb-search", exit_on_error=False)
    def search(self, query: str) -> None:
        """Retrieve in a thread; post the result back to the UI thread."""
        if not query.strip() or self.assistant is None:
            self.app.call_from_thread(self._show, [], query)
            return
        hits = list(self.assistant.retrieve(query, 5))
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, hits, query)

    def _show(self, hits: list[Passage], query: str) -> None:
        """Render the hits (KB text is data too: literal)."""
        self.hits = hits
        out = Text()
        if not hits:
            out.append("no results" if query.strip() else "type to search", style="dim")
        for rank, hit in enumerate(hits, 1):
            out.append(f"{rank}. {one_line(hit.title, 60)}", style="bold")
            out.append(f"  {hit.score:.2f}  {one_line(hit.article_id, 30)}\n", style="dim")
            out.append_text(safe_text(hit.text, max_chars=600))
            out.append("\n\n")
        self.query_one("#kb-results", Static).update(out)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Use the best hit's text."""
        self.dismiss(self.hits[0].text if self.hits else None)

    def action_cancel(self) -> None:
        """Close without using anything."""
        self.dismiss(None)

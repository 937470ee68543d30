"""Up to three suggested replies, streaming in; clicking one (or pressing its number) accepts it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message as TextualMessage
from textual.widgets import Static

from csassist.core.types import Suggestion
from csassist.ui.render import clean, one_line, safe_content, safe_text
from csassist.ui.state import SlotState

MAX_SLOTS = 3


#: How a sentence the KB does not support is shown in a card (a code-defined style, never from data).
UNSUPPORTED_STYLE = "underline bold"


def mark_unsupported(body: Text, suggestion: Suggestion | None) -> list[str]:
    """Underline the sentences of ``body`` that the grounding check found unsupported.

    Sentences are located by their (sanitised) text, not by offset: the safe-text path may have made
    control characters visible, which shifts offsets but not the words.  Returns the marked texts.
    """
    grounding = suggestion.grounding if suggestion is not None else None
    if grounding is None:
        return []
    plain = body.plain
    marked: list[str] = []
    cursor = 0
    for sentence in grounding.unsupported:
        needle = clean(sentence.text)
        at = plain.find(needle, cursor)
        if at == -1:
            continue
        body.stylize(UNSUPPORTED_STYLE, at, at + len(needle))
        marked.append(needle)
        cursor = at + len(needle)
    return marked


class SuggestionCard(Static):
    """One slot: a border title with its number and backend, and the text so far."""

    @dataclass
    class Clicked(TextualMessage):
        """The agent clicked this card (same as pressing its number)."""

        slot: int

    def __init__(self, slot: int, **kwargs: object) -> None:
        super().__init__("", markup=False, **kwargs)  # type: ignore[arg-type]
        self.slot = slot
        self.shown_text = ""
        self.shown_warning = ""  # the fact-flag line under the card, as plain text (tests read it)
        self.shown_unsupported: list[str] = []  # sentences marked as not supported by the KB

    def show(self, state: SlotState | None, picked: bool) -> None:
        """Render the slot state (or an empty placeholder); unchanged states are not re-rendered."""
        signature = None if state is None else (state.text, state.backend, state.done, state.error,
                                                state.suggestion is not None)
        if (signature, picked) == getattr(self, "_signature", ()):
            return
        self._signature = (signature, picked)
        self.set_class(picked, "-picked")
        self.set_class(state is None, "-empty")
        if state is None:
            self.border_title = f"{self.slot + 1}"
            self.border_subtitle = ""
            self.shown_text = self.shown_warning = ""
            self.shown_unsupported = []
            self.update(Text("—", style="dim"), layout=False)
            return
        status = "" if state.done else " …"
        if state.error:
            status = " failed"
        flags = state.suggestion.flags if state.suggestion else ()
        grounding = state.suggestion.grounding if state.suggestion else None
        if grounding is not None and grounding.unsupported:
            flags = (f"{len(grounding.unsupported)} not in the KB (d drops)", *flags)
        # backend names and fact flags are data (a flag quotes the draft: "unsupported URL https://h/[/]x")
        # the strategy that made the draft (select / rewrite / a fallback), when the engine says so
        strategy = state.suggestion.strategy if state.suggestion else ""
        how = f" · {one_line(strategy, 20)}" if strategy and strategy != state.backend else ""
        self.border_title = safe_content(f"{self.slot + 1} · {one_line(state.backend or '?', 20)}{how}{status}")
        warning = safe_content("⚠ " + one_line("; ".join(flags), 200)) if flags else Content("")
        self.shown_warning = warning.plain
        self.border_subtitle = warning
        body = safe_text(state.text or ("(no text)" if state.done else "…"), max_chars=4000)
        if state.error:
            body = safe_text(state.error, style="italic")
        self.shown_unsupported = [] if state.error else mark_unsupported(body, state.suggestion)
        self.shown_text = body.plain
        self.update(body, layout=False)  # fixed-height card: no re-layout per streamed token

    def on_click(self, event: events.Click) -> None:
        """A click accepts this suggestion."""
        self.post_message(self.Clicked(self.slot))


class SuggestionList(Vertical):
    """The three cards in a column between the transcript and the composer."""

    def compose(self) -> ComposeResult:
        """Always three cards so the layout never jumps."""
        for slot in range(MAX_SLOTS):
            yield SuggestionCard(slot, id=f"suggestion-{slot + 1}", classes="suggestion")

    def show(self, slots: dict[int, SlotState], picked: int | None) -> None:
        """Render all slots."""
        for card in self.query(SuggestionCard):
            card.show(slots.get(card.slot), picked == card.slot)

    def card_text(self, slot: int) -> str:
        """The plain text currently shown in card ``slot`` (for tests)."""
        return self.query_one(f"#suggestion-{slot + 1}", SuggestionCard).shown_text

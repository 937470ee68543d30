"""What the engine understood: top intents with confidence bars, entities, urgency, KB answers."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Collapsible, Static

from csassist.core.types import Analysis, Passage
from csassist.ui.render import confidence_bar, one_line, safe_text

URGENCY_VARIABLE = {"normal": "csassist-normal", "elevated": "csassist-elevated", "urgent": "csassist-urgent"}


class AssistPanel(VerticalScroll):
    """Right-hand column; ``show`` replaces its content for the selected conversation."""

    def compose(self) -> ComposeResult:
        """Fixed sections; their content changes, the layout does not."""
        yield Static(Text("No conversation selected", style="dim"), id="intents", markup=False)
        yield Static("", id="entities", markup=False)
        yield Static(Text("Knowledge base", style="bold"), classes="section-title", markup=False)
        yield Vertical(id="kb")

    def show(self, analysis: Analysis | None, passages: list[Passage], correction: str | None) -> None:
        """Render one conversation's analysis and passages (called on the UI thread)."""
        self.query_one("#intents", Static).update(self._intents(analysis, correction))
        self.query_one("#entities", Static).update(self._entities(analysis))
        kb = self.query_one("#kb", Vertical)
        kb.remove_children()
        if not passages:
            kb.mount(Static(Text("waiting for a customer message…" if analysis is None else "no KB match",
                                 style="dim"), markup=False))
            return
        for rank, passage in enumerate(passages[:5], 1):
            title = f"{rank}. {one_line(passage.title, 30)}  {passage.score:.2f}"
            body = Static(safe_text(passage.text, max_chars=4000), markup=False, classes="kb-body")
            kb.mount(Collapsible(body, title=Content(title), collapsed=rank > 1, classes="kb-answer"))  # plain, not markup

    def _intents(self, analysis: Analysis | None, correction: str | None) -> Text:
        """Top-3 intents with bars, the out-of-scope verdict and urgency with its reasons."""
        out = Text()
        out.append("Intent", style="bold")
        if analysis is None:
            out.append("\n  analysing…" if correction is None else "", style="dim")
            return out
        if correction:
            out.append("  corrected → ", style="dim")
            out.append(one_line(correction, 24), style="bold")
        elif analysis.intent.out_of_scope:
            out.append("  out of scope", style="bold")
        bar = self.app.theme_variables.get("csassist-bar", "")
        for score in analysis.intent.top[:3]:
            out.append("\n  ")
            out.append(f"{one_line(score.intent, 20):<20} ")
            out.append(confidence_bar(score.probability), style=bar)
            out.append(f" {score.probability * 100:3.0f}%")
        level = analysis.urgency.level
        colour = self.app.theme_variables.get(URGENCY_VARIABLE.get(level, ""), "")
        out.append("\nUrgency ", style="bold")
        out.append(level, style=f"bold {colour}".strip())
        if analysis.urgency.reasons:
            out.append("  " + one_line(", ".join(analysis.urgency.reasons), 30), style="dim")
        return out

    def _entities(self, analysis: Analysis | None) -> Text:
        """One line per entity: type and normalised value (both literal)."""
        out = Text()
        out.append("Entities", style="bold")
        if analysis is None:
            return out
        if not analysis.entities:
            out.append("  none", style="dim")
        for entity in analysis.entities[:8]:
            out.append("\n  ")
            out.append(f"{one_line(entity.type, 14):<14} ", style="dim")
            out.append(one_line(entity.value or entity.text, 28))
        return out

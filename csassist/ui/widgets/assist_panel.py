"""What the engine understood: top intents with confidence bars and why, entities, urgency, KB answers.

Agents trust what they can check: under the intents one line says why (the out-of-scope detector's
reason, or the training example the message is closest to), and each KB answer starts with the
sentence that matched the message."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Collapsible, Static

from csassist.core.types import Analysis, Passage
from csassist.ui.render import confidence_bar, one_line, safe_content, safe_text, theme_colour

PAD = "\u00a0\u00a0"  # non-breaking: Textual's wrapping drops ordinary spaces at span starts
URGENCY_VARIABLE = {"normal": "csassist-normal", "elevated": "csassist-elevated", "urgent": "csassist-urgent"}


class AssistPanel(VerticalScroll):
    """Right-hand column; ``show`` replaces its content for the selected conversation."""

    MAX_PASSAGES = 5

    def compose(self) -> ComposeResult:
        """Fixed sections; their content changes, the layout does not (nothing is mounted later)."""
        yield Static(Text("No conversation selected", style="dim"), id="intents", markup=False)
        yield Static("", id="entities", markup=False)
        yield Static(Text("Knowledge base", style="bold"), classes="section-title", markup=False)
        with Vertical(id="kb"):
            yield Static("", id="kb-empty", markup=False)
            for rank in range(1, self.MAX_PASSAGES + 1):
                body = Static("", markup=False, classes="kb-body", id=f"kb-body-{rank}")
                yield Collapsible(body, title="", collapsed=rank > 1, classes="kb-answer", id=f"kb-{rank}")

    def on_mount(self) -> None:
        """Nothing shown until the first analysis."""
        self._key: tuple[int, int, str | None] | None = None
        self._bodies: dict[int, str] = {}  # KB answer text shown per rank
        for rank in range(1, self.MAX_PASSAGES + 1):
            self.query_one(f"#kb-{rank}", Collapsible).display = False

    def show(self, analysis: Analysis | None, passages: list[Passage], correction: str | None) -> None:
        """Render one conversation's analysis and passages (skipped when nothing changed)."""
        key = (id(analysis), id(passages), correction)
        if key == self._key:
            return
        self._key = key
        self.query_one("#intents", Static).update(self._intents(analysis, correction), layout=False)  # fixed height
        self.query_one("#entities", Static).update(self._entities(analysis), layout=False)
        # Layout (a reflow of the whole screen) only where a height can change: the KB notice is one
        # line, and a collapsed answer's body is not on screen until it is expanded (which reflows).
        empty = self.query_one("#kb-empty", Static)
        if empty.display != (not passages):
            empty.display = not passages
        empty.update(Text("waiting for a customer message…" if analysis is None else "no KB match", style="dim"),
                     layout=False)
        for rank in range(1, self.MAX_PASSAGES + 1):
            box = self.query_one(f"#kb-{rank}", Collapsible)
            if rank > len(passages):
                if box.display:
                    box.display = False
                continue
            passage = passages[rank - 1]
            if not box.display:
                box.display = True
            title = safe_content(f"{rank}. {one_line(passage.title, 30)}  {passage.score:.2f}")  # literal
            if title != box.title:
                box.title = title  # type: ignore[assignment]  # Collapsible accepts Content
            body = f"matched: {passage.evidence}\n\n{passage.text}" if passage.evidence else passage.text
            if self._bodies.get(rank) != body:  # the same answer again (a follow-up): nothing to do
                self._bodies[rank] = body
                self.query_one(f"#kb-body-{rank}", Static).update(safe_text(body, max_chars=4000),
                                                                   layout=not box.collapsed)

    def _intents(self, analysis: Analysis | None, correction: str | None) -> Text:
        """Top-3 intents with bars, the out-of-scope verdict and urgency with its reasons."""
        out = Text()
        out.append("Intent", style="bold")
        if analysis is None:
            out.append("\n" + PAD + "analysing…" if correction is None else "", style="dim")
            return out
        if correction:
            out.append(PAD + "corrected → ", style="dim")
            out.append(one_line(correction, 24), style="bold")
        elif analysis.intent.out_of_scope:
            out.append(PAD + "out of scope", style="bold")
        bar = theme_colour(self.app.theme_variables, "csassist-bar")
        for score in analysis.intent.top[:3]:
            out.append("\n" + PAD)
            out.append(f"{one_line(score.intent, 20):<20} ")
            out.append(confidence_bar(score.probability), style=bar)
            out.append(f" {score.probability * 100:3.0f}%")
        why = _why(analysis)
        if why:  # the one spare line: why out of scope, or the training example the message resembles
            out.append("\n" + PAD + one_line(why, 38), style="dim")
        level = analysis.urgency.level
        colour = theme_colour(self.app.theme_variables, URGENCY_VARIABLE.get(level, ""))
        out.append("\nUrgency ", style="bold")
        out.append(one_line(level, 12), style=f"bold {colour}".strip())
        if analysis.urgency.reasons:
            out.append(PAD + one_line(", ".join(analysis.urgency.reasons), 30), style="dim")
        return out

    def _entities(self, analysis: Analysis | None) -> Text:
        """One line per entity: type and normalised value (both literal)."""
        out = Text()
        out.append("Entities", style="bold")
        if analysis is None:
            return out
        if not analysis.entities:
            out.append(PAD + "none", style="dim")
        for entity in analysis.entities[:8]:
            out.append("\n" + PAD)
            out.append(f"{one_line(entity.type, 14):<14} ", style="dim")
            out.append(one_line(entity.value or entity.text, 28))
        return out


def _why(analysis: Analysis) -> str:
    """Out of scope: the detector's reason; in scope: how typos were read, else the nearest training example."""
    prediction = analysis.intent
    if prediction.out_of_scope and prediction.reason:
        return prediction.reason.split(": ", 1)[-1]
    if prediction.read_as:
        return f"read as \u201c{prediction.read_as}\u201d"
    if prediction.neighbours:
        nearest = prediction.neighbours[0]
        return f"like \u201c{nearest.text}\u201d {nearest.similarity:.2f}"
    return ""

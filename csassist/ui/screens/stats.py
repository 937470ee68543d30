"""Acceptance statistics from the feedback log, with sparklines over days."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Sparkline, Static

from csassist.core.learn.stats import StatsReport
from csassist.ui.render import format_ms, one_line, safe_text


class StatsScreen(ModalScreen[None]):
    """Shows :func:`csassist.core.learn.stats.compute_stats` output; Escape closes."""

    BINDINGS = [Binding("escape,q", "close", "Close", id="stats.close", tooltip="Back to the inbox")]

    def __init__(self, stats: StatsReport) -> None:
        super().__init__()
        self.stats = stats

    def compose(self) -> ComposeResult:
        """Overall rates, daily sparklines, and a per-intent table."""
        s = self.stats
        rates = s.rates
        summary = Text.assemble(
            ("Suggestions shown: ", "bold"), str(s.total),
            ("   acceptance ", "bold"), f"{s.acceptance_rate * 100:.0f}%",
            "   (as-is ", f"{rates.get('accepted', 0.0) * 100:.0f}%", ", edited ",
            f"{rates.get('edited', 0.0) * 100:.0f}%", ", rejected ", f"{rates.get('rejected', 0.0) * 100:.0f}%",
            ", ignored ", f"{rates.get('ignored', 0.0) * 100:.0f}%)",
            ("\nfirst token p50 ", "dim"), format_ms(s.first_token_ms.p50),
        )
        daily = s.daily
        table = Table(box=None, expand=True)
        for col in ("intent", "shown", "accept", "edit dist"):
            table.add_column(col)
        for intent, group in list(s.by_intent.items())[:20]:
            dist = group.mean_edit_distance
            # intent labels include the agent's free-typed corrections: data, never table markup
            table.add_row(safe_text(one_line(intent, 60)), str(group.total), f"{group.acceptance_rate * 100:.0f}%",
                          "–" if dist is None else f"{dist:.1f}")
        with VerticalScroll(id="stats-body"):
            yield Static(summary, markup=False)
            yield Label("Shown per day")
            yield Sparkline([float(d.total) for d in daily] or [0.0], id="spark-total")
            yield Label("Acceptance rate per day")
            yield Sparkline([float(d.acceptance_rate) for d in daily] or [0.0], id="spark-accept")
            yield Static(table)

    def action_close(self) -> None:
        """Back to the inbox."""
        self.dismiss(None)

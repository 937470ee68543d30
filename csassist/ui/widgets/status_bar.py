"""One line at the bottom: backend and device, model names, last latencies, where messages come from."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from csassist.ui.render import format_ms, one_line

#: Which of ``Assistant.describe()``'s entries fit on the line (the rest is in ``csassist models``).
SHOWN_KEYS = ("engine", "backend", "device", "generator", "intent_model")


class StatusBar(Static):
    """Rendered from plain values the app hands over; never reads the engine itself."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", markup=False, **kwargs)  # type: ignore[arg-type]
        self.engine: dict[str, str] = {}
        self.latencies: dict[str, float | None] = {"analyse": None, "retrieve": None, "first token": None}
        self.source = ""

    def set_engine(self, description: dict[str, str]) -> None:
        """Backend, device and model names from ``Assistant.describe()``."""
        self.engine = dict(description)
        self.refresh()

    def set_latency(self, name: str, value: float | None) -> None:
        """Record the latest latency of one stage (``analyse``, ``retrieve``, ``first token``).

        Called several times per analysed message: it only marks the line dirty, and the line is
        built once per repaint by :meth:`render`.
        """
        self.latencies[name] = value
        self.refresh()

    def set_source(self, source: str) -> None:
        """Where messages come from (demo, a file, stdin, an HTTP address)."""
        self.source = source
        self.refresh()

    def render(self) -> Text:
        """The status line from the current values (untrusted names go through ``one_line``)."""
        parts = Text()
        for key, value in self.engine.items():
            if key not in SHOWN_KEYS or value in ("", "-"):
                continue
            parts.append(f"{one_line(key, 20)} ", style="dim")
            parts.append(one_line(value, 60))  # model names and paths come from config: data
            parts.append("  ")
        for key, latency in self.latencies.items():
            parts.append(f"{key} ", style="dim")
            parts.append(format_ms(latency))
            parts.append("  ")
        if self.source:
            parts.append("src ", style="dim")
            parts.append(one_line(self.source, 80))
        return parts

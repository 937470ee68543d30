"""Command palette entries (ctrl+p): KB search, re-index, switch backend, switch theme, stats, help.

Added next to Textual's own providers (``COMMANDS = App.COMMANDS | {CsassistCommands}``), so the
built-in theme picker and quit stay available too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:  # pragma: no cover
    from csassist.ui.actions import AgentActions

BACKENDS = ("extractive", "local", "server")


class CsassistCommands(Provider):
    """csassist's own palette commands."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        """(title, callback, help) for every command, built fresh so themes added later show up."""
        app = cast("AgentActions", self.app)  # the app's actions; importing app.py here would be a cycle
        commands: list[tuple[str, Callable[[], object], str]] = [
            ("Search the knowledge base", app.action_kb_search, "Find a KB answer and put it in the composer"),
            ("Re-index the knowledge base", app.reindex, "Rebuild the FAISS index from the KB files, then reload"),
            ("Show statistics", app.action_stats, "Acceptance rates from the feedback log"),
            ("Show keys (help)", app.action_help, "Every shortcut and what it does"),
            ("Sort inbox by urgency / arrival", app.action_toggle_sort, "Toggle the inbox order"),
        ]
        for backend in BACKENDS:
            commands.append((f"Switch backend: {backend}", partial(app.switch_backend, backend),
                             f"Reload the engine with the {backend} reply generator"))
        for name in sorted(app.available_themes):
            if name.startswith("csassist"):
                commands.append((f"Switch theme: {name}", partial(setattr, app, "theme", name), "csassist theme"))
        return commands

    async def discover(self) -> Hits:
        """Shown before anything is typed."""
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Fuzzy-match the titles."""
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)

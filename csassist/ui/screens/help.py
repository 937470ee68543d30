"""Every shortcut with its current key (after the user's ``[ui] keys`` remapping) and what it does."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static

from csassist.ui.render import safe_text


def key_rows(bindings: list[BindingType], keymap: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """``(keys, description, tooltip, binding id)`` per binding id, with keymap overrides applied."""
    rows: dict[str, tuple[str, str, str, str]] = {}
    for binding in Binding.make_bindings(bindings):
        if not binding.description:
            continue
        ident = binding.id or binding.action
        keys = keymap.get(binding.id, "") if binding.id else ""
        display = ", ".join(format_key(k.strip()) for k in (keys or binding.key).split(","))
        if ident in rows and not keys:
            display = f"{rows[ident][0]}, {display}"
        rows[ident] = (display, binding.description, binding.tooltip, binding.id or "")
    return list(rows.values())


class HelpScreen(ModalScreen[None]):
    """A modal table of the keyboard flow; Escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close", tooltip="Back to the inbox"),
    ]

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        """A title, the table and a short how-to."""
        table = Table(expand=True, show_edge=False, box=None, pad_edge=False)
        table.add_column("Key", style="bold", no_wrap=True)
        table.add_column("Action", no_wrap=True)
        table.add_column("What it does")
        table.add_column("Binding id (config)", style="dim", no_wrap=True)
        for keys, description, tooltip, ident in self.rows:
            table.add_row(*(safe_text(cell, max_chars=200) for cell in (keys, description, tooltip, ident)))  # keys: config
        intro = Text.assemble(
            ("csassist — keys\n", "bold"),
            ("Pick a conversation (n/p or the mouse), press 1, 2 or 3 to put a suggestion in the composer, "
             "e to edit it, ctrl+s to send. Escape leaves the composer; ctrl+p opens the command palette.\n"
             "Remap any key in config.toml, e.g.  [ui.keys]  \"composer.send\" = \"ctrl+enter\"\n", ""),
        )
        with VerticalScroll(id="help-body"):
            yield Static(intro, markup=False)
            yield Static(table)

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help screen."""
        self.dismiss(None)

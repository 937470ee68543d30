"""What every command does before its own work: load the config into a workspace and say what is off.

Why one helper: each command used to load settings itself, and some (``search``, ``eval``,
``finetune --from-log``) never printed the config warnings, so a typo in config.toml went unnoticed
exactly where it changed the result.  Imported inside ``run`` only: ``csassist --help`` stays instant.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.workspace import Workspace
    from csassist.settings import Settings


def print_warnings(warnings: tuple[str, ...] | list[str], prefix: str = "warning") -> None:
    """Each warning on its own stderr line, as plain text (config values are never markup)."""
    from csassist.core.sanitize import safe_line

    for warning in warnings:
        print(f"{prefix}: {safe_line(warning)}", file=sys.stderr)


def open_workspace(settings: Settings | None = None, *, quiet: bool = True) -> Workspace:
    """The workspace of ``settings`` (default: config.toml), its config warnings printed to stderr.

    ``quiet`` hides transformers' per-load progress bars, which are noise in a CLI that loads one
    small model.
    """
    from csassist.core.workspace import Workspace

    workspace = Workspace(settings)
    print_warnings(workspace.warnings)
    if quiet:
        quiet_model_loading()
    return workspace


def quiet_model_loading() -> None:
    """Hide transformers' per-load "Loading weights" bar."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass

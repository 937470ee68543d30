"""`csassist log` (placeholder until its issue lands; replaced by the owning work)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the subcommand."""
    sub.add_parser("log", help="(not yet available)")


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    from csassist.core.errors import CsassistError

    raise CsassistError("'csassist log' is not available in this build yet")

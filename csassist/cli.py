"""Command-line entry point: ``csassist [SUBCOMMAND] ...``.

No subcommand starts the terminal app.  Each subcommand lives in ``csassist/commands/<name>.py``
exposing ``add_parser(subparsers)`` and ``run(args) -> int``; those modules import only argparse at
top level so ``csassist --help`` stays instant, and load torch & co. inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from csassist import __version__

#: Subcommand modules under csassist.commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "index",
    "search",
    "analyze",
    "suggest",
    "summarize",
    "models",
    "finetune",
    "eval",
    "log",
    "stats",
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3  # finished, but some input was skipped (e.g. broken KB files)


def _offline_defaults() -> None:
    """Never reach for a model hub unless the user explicitly allows it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommands register themselves from their modules."""
    parser = argparse.ArgumentParser(
        prog="csassist",
        description="Local, keyboard-first assistant for customer-service agents. "
        "Without a subcommand, opens the terminal app on the demo inbox (or --source/--listen feeds).",
    )
    parser.add_argument("--version", action="version", version=f"csassist {__version__}")
    add_app_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"csassist.commands.{name}")
        module.add_parser(sub)
    return parser


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the terminal app itself (used when no subcommand is given)."""
    parser.add_argument(
        "--source",
        metavar="FILE.jsonl|-|chatwoot",
        help="read customer messages from a JSONL file, - for stdin, or chatwoot (the agent's assigned "
        "conversations, see [chatwoot] in config.toml) instead of the demo replay",
    )
    parser.add_argument("--follow", action="store_true", help="with --source FILE: keep reading appended lines")
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="accept POST /v1/messages on this address (loopback by default)"
    )
    parser.add_argument("--no-demo", action="store_true", help="start with an empty inbox")
    parser.add_argument("--backend", choices=("local", "server", "extractive"), help="reply generator backend")
    parser.add_argument("--theme", help="theme name (see themes/ and the config dir)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="demo replay speed factor (2 = twice as fast)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the subcommand or the app, and map engine errors to a clean exit."""
    _offline_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    # Everything this process writes (feedback log, outbox, indexes, models - also through FAISS and
    # torch) is the user's private data: files 0600, folders 0700 (issue 10.14).
    previous_umask = os.umask(0o077)
    try:
        if args.command is None:
            from csassist.ui.app import run_app

            return run_app(args)
        module = importlib.import_module(f"csassist.commands.{args.command}")
        return int(module.run(args))
    except KeyboardInterrupt:
        print("interrupted: nothing was half-written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into messages
        from csassist.core.errors import CsassistError

        if isinstance(exc, CsassistError):
            from csassist.core.sanitize import make_safe_for_terminal

            print(f"csassist: {make_safe_for_terminal(str(exc))}", file=sys.stderr)  # may quote file names
            return EXIT_ERROR
        raise
    finally:
        os.umask(previous_umask)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""`csassist log`: the feedback log for other tools.

``csassist log export --jsonl [--out FILE]`` writes one redacted event per line (stdout by default);
``csassist log path`` prints where the log lives and checks that it is intact.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``log`` with its ``export`` and ``path`` actions."""
    p = sub.add_parser("log", help="export or locate the feedback log")
    p.add_argument("--log", metavar="PATH", help="feedback log (default: the user data dir)")
    actions = p.add_subparsers(dest="log_action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write every logged event (already PII-redacted)")
    export.add_argument("--jsonl", action="store_true", required=True, help="one JSON object per line")
    export.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    actions.add_parser("path", help="print the log's location, event count and integrity")


def run(args: argparse.Namespace) -> int:
    """Export or describe the log."""
    import sys
    from pathlib import Path

    from csassist.commands.common import open_workspace
    from csassist.core.learn.feedback import FeedbackLog

    workspace = open_workspace(quiet=False)
    path = Path(args.log) if args.log else workspace.feedback_path
    if args.log_action == "path":
        with FeedbackLog(path) as log:
            print(
                f"{log.path}\t{log.count()} events\tschema v{log.schema_version}\t"
                f"integrity {'ok' if log.integrity_ok() else 'DAMAGED'}"
            )
        return 0
    with FeedbackLog(path) as log:
        if args.out:
            count = log.export_jsonl(Path(args.out))
            print(f"wrote {count} events to {args.out}", file=sys.stderr)
        else:
            count = log.export_jsonl(sys.stdout)
    return 0

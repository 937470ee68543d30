"""`csassist index [KB_DIR]`: embed the knowledge base into a FAISS index (incremental, atomic).

Shows a progress bar while embedding and a summary table at the end; broken KB files are listed
with file:line and the exit code is 3 (partial) so scripts notice, while everything else is indexed.
After a successful build the intent head is fitted from the KB's ``intents.csv`` into ``<out>/intent``
and the out-of-scope detector (``intents.csv`` against ``offtopic.csv``) into ``<out>/oos``.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``index`` and its options."""
    p = sub.add_parser(
        "index",
        help="build or update the search index of a knowledge base",
        description="Embed a knowledge-base directory into a FAISS index. Only new or changed chunks are "
        "re-embedded; the index is replaced atomically, so an interrupted run leaves the old one intact.",
    )
    p.add_argument("kb_dir", nargs="?", metavar="KB_DIR", help="knowledge-base directory (default: the demo kb/)")
    p.add_argument("--out", metavar="DIR", help="index directory (default: the user data dir)")
    p.add_argument("--embedder", metavar="NAME_OR_PATH", help="sentence-transformers model id or local directory")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything instead of reusing vectors")
    p.add_argument(
        "--index-type",
        choices=("auto", "flat", "hnsw", "ivf"),
        default=None,
        help="exact (flat) or approximate (hnsw, ivf) search; auto picks hnsw from 50,000 chunks",
    )
    p.add_argument("--json", action="store_true", help="print the build report as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Build the index, fit the intent head, print the summary; 0 clean, 3 if KB input was skipped."""
    import sys
    from pathlib import Path

    from rich.console import Console

    from csassist.cli import EXIT_OK, EXIT_PARTIAL
    from csassist.commands.common import open_workspace
    from csassist.core.sanitize import terminal_safe_json

    workspace = open_workspace()
    err = Console(stderr=True)
    kb_dir = Path(args.kb_dir).expanduser() if args.kb_dir else workspace.kb_dir
    out_dir = Path(args.out).expanduser() if args.out else workspace.index_dir
    workspace.configure_threads()
    encoder = workspace.encoder(args.embedder)
    build = _build_with_progress(workspace, kb_dir, out_dir, encoder, args, err)
    report, intent, oos = build.report, build.intents.as_dict(), build.oos.as_dict()
    # Why the embedder does not run as configured (int8 refused, ONNX Runtime unusable), when it does not.
    embedder_note = str(getattr(encoder, "precision_note", "") or getattr(encoder, "fallback_reason", "") or "")
    promoted = workspace.intent_store().current()
    if promoted is not None and intent["status"] == "fitted":  # say so: this head is not what the app uses
        intent["in_use_instead"] = promoted.name
    exit_code = EXIT_OK if report.clean else EXIT_PARTIAL

    if args.json:
        payload = {
            "kb_dir": str(kb_dir),
            "out_dir": str(report.out_dir),
            "index_type": report.index_type,
            "embedder": report.embedder,
            "dimension": report.dimension,
            "precision": report.precision,
            "embedder_note": embedder_note,
            "files_read": report.files_read,
            "articles": report.articles,
            "chunks": report.chunks,
            "embedded": report.embedded,
            "reused": report.reused,
            "removed": report.removed,
            "full_rebuild_reason": report.full_rebuild_reason,
            "seconds": round(report.seconds, 3),
            "problems": [{"file": p.source, "line": p.line, "message": p.message} for p in report.problems],
            "intent_examples": len(report.intent_examples),
            "intent_head": intent,
            "oos_detector": oos,
            "exit_code": exit_code,
        }
        sys.stdout.write(terminal_safe_json(payload) + "\n")
        return exit_code
    _print_summary(Console(), report, kb_dir, intent, oos, embedder_note)
    return exit_code


def _build_with_progress(workspace: Any, kb_dir: Any, out_dir: Any, encoder: Any, args: Any, err: Any) -> Any:
    """Run the workspace's build with a rich progress bar on stderr (hidden with --json or when nothing is embedded)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from csassist.core.progress import ProgressEvent

    with Progress(
        TextColumn("embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=bool(args.json),
    ) as bar:
        task = bar.add_task("embed", total=None)

        def progress(event: ProgressEvent) -> None:
            bar.update(task, completed=event.done, total=event.total or 1)

        return workspace.build_index(
            kb_dir, out_dir, encoder=encoder, rebuild=args.rebuild, index_type=args.index_type, progress=progress
        )


def _print_summary(console: Any, report: Any, kb_dir: Any, intent: dict[str, Any], oos: dict[str, Any],
                   embedder_note: str = "") -> None:
    """The end-of-build table, then the list of skipped input with file:line."""
    from rich.table import Table
    from rich.text import Text

    from csassist.core.sanitize import safe_line

    table = Table(title="csassist index", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    rows = [
        ("knowledge base", str(kb_dir)),
        ("files read", str(report.files_read)),
        ("articles", str(report.articles)),
        ("chunks", str(report.chunks)),
        ("embedded", str(report.embedded)),
        ("reused", str(report.reused)),
        ("removed", str(report.removed)),
        ("skipped input", str(len(report.problems))),
        ("index type", report.index_type),
        ("embedder", f"{report.embedder} ({report.dimension}-d, {report.precision} weights)"),
        *([("embedder note", embedder_note)] if embedder_note else []),
        ("time", f"{report.seconds:.2f} s (embedding {report.embed_seconds:.2f} s)"),
        ("output", str(report.out_dir)),
    ]
    if report.full_rebuild_reason:
        rows.append(("full re-embed", report.full_rebuild_reason))
    if intent["status"] == "fitted":
        shown = ("intents", "examples", "heldout_accuracy", "threshold")
        details = ", ".join(f"{k.replace('_', ' ')} {intent[k]}" for k in shown if k in intent)
        rows.append(("intent head", f"fitted ({details})" if details else "fitted"))
        weight = intent.get("lexical_weight") or 0
        rows.append(("lexical intent vote", f"{weight:.0%} of the ranking (chosen by cross-validation)" if weight
                     else "not used (no gain in cross-validation)"))
        if intent.get("in_use_instead"):
            rows.append(("intent model in use", f"{intent['in_use_instead']} (promoted; `csassist finetune --rollback "
                                                 "--rollback-target intent` returns to this head)"))
    else:
        rows.append(("intent head", intent.get("reason", intent["status"])))
    if oos["status"] == "fitted":
        rows.append(("out-of-scope detector", f"fitted ({oos['off_topic_examples']} off-topic examples, "
                     f"cv recall {oos['cv_oos_recall']:.2f} at {oos['cv_in_scope_flagged']:.2f} in-scope flagged)"))
    else:
        rows.append(("out-of-scope detector", str(oos.get("reason", oos["status"]))))
    for name, value in rows:
        table.add_row(name, Text(safe_line(value)))  # paths and reasons may hold a file's name
    console.print(table)
    if report.problems:
        console.print(Text(f"Skipped {len(report.problems)} problem(s) in the KB:", style="yellow"))
        for problem in report.problems:
            console.print(Text(f"  {safe_line(problem)}"))

"""`csassist eval intents --data test.csv`: measure the intent model on labelled data.

Accuracy, macro-F1, per-intent precision/recall/F1, the worst confusion pairs, out-of-scope recall
and in-scope accuracy (when the data has ``oos`` rows) and single-message latency p50/p95.
``--json`` prints one object with at least ``accuracy``, ``macro_f1``, ``oos_recall`` (null when the
data has no ``oos`` rows), ``latency_ms_p50`` and ``latency_ms_p95``.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``eval`` and its options."""
    p = sub.add_parser("eval", help="evaluate the intent model on labelled data (accuracy, F1, OOS, latency)")
    p.add_argument("what", choices=("intents",), help="what to evaluate")
    p.add_argument("--data", required=True, metavar="FILE.csv|jsonl", help="labelled test data (text,label)")
    p.add_argument(
        "--model",
        metavar="DIR",
        help="an intent model directory (a version of the intent model store or a head) or an index directory "
        "(default: the model the app uses)",
    )
    p.add_argument("--index", metavar="DIR", help="index directory (default: configured)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _load_model(model_arg: str | None, index_arg: str | None, workspace):  # type: ignore[no-untyped-def]
    """Resolve ``--model``: an intent model directory (a store version or a head) or an index directory."""
    import re
    from pathlib import Path

    from csassist.core.errors import ModelMissingError
    from csassist.core.understand.intent import ORIGIN_STORE, read_model

    if model_arg:
        path = Path(model_arg).expanduser()
        if (path / "meta.json").exists():
            if re.match(r"^v\d{4,}-", path.name):  # a version of the intent model store
                return read_model(path, origin=ORIGIN_STORE, version=path.name)
            return read_model(path)
        if (path / "intent" / "meta.json").exists():
            return read_model(path / "intent")
        raise ModelMissingError(f"{path}: not an intent model or index directory")
    index_dir = Path(index_arg).expanduser() if index_arg else workspace.index_dir
    return workspace.intent_model(index_dir=index_dir)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    import json
    import sys
    from pathlib import Path

    from csassist.commands.common import open_workspace
    from csassist.core.learn.intent_eval import evaluate_intents
    from csassist.core.understand.intent_data import load_labelled_file

    workspace = open_workspace()
    examples, problems = load_labelled_file(Path(args.data).expanduser())
    for problem in problems[:10]:
        print(f"warning: {problem}", file=sys.stderr)
    if len(problems) > 10:
        print(f"warning: ... and {len(problems) - 10} more skipped rows", file=sys.stderr)
    workspace.configure_threads(1)  # single-message latency, measured as the app runs it
    model = _load_model(args.model, args.index, workspace)
    report = evaluate_intents(model, examples)
    report["skipped_rows"] = len(problems)
    unknown = report["unknown_labels"]
    if unknown:
        listed = ", ".join(f"{label} ({n})" for label, n in sorted(unknown.items(), key=lambda kv: -kv[1])[:10])
        print(
            f"warning: {sum(unknown.values())} row(s) have labels the model does not know, counted as errors: {listed}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(report))
        return 0
    _print_report(report)
    return 0


def _fmt(value: float | None, pct: bool = True) -> str:
    """A percentage (or ms) or 'n/a'."""
    if value is None:
        return "n/a"
    return f"{value:.2%}" if pct else f"{value:.1f}"


def _print_report(r: dict) -> None:
    """Plain-text report: headline numbers, per-intent table (worst first), confusions."""
    print(f"model:             {r.get('model_description') or r['model']}")
    print(f"examples:          {r['examples']} ({r['in_scope_examples']} in scope, {r['oos_examples']} oos)")
    print(f"accuracy:          {_fmt(r['accuracy'])}")
    print(f"macro-F1:          {_fmt(r['macro_f1'])}")
    print(f"oos recall:        {_fmt(r['oos_recall'])}   (threshold {r['threshold']:.3f})")
    print(f"in-scope accuracy: {_fmt(r['in_scope_accuracy'])}")
    print(f"latency:           p50 {_fmt(r['latency_ms_p50'], False)} ms, p95 {_fmt(r['latency_ms_p95'], False)} ms")
    per = sorted(r["per_intent"].items(), key=lambda kv: (kv[1]["f1"], kv[0]))
    if per:
        print(f"\n{'intent':<44} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}")
        for name, m in per:
            print(f"{name[:44]:<44} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>5}")
    if r["worst_confusions"]:
        print("\nworst confusions (gold -> predicted):")
        for c in r["worst_confusions"]:
            print(f"  {c['count']:>4}  {c['gold']} -> {c['predicted']}")

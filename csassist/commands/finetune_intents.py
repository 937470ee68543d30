"""`csassist finetune --intents DATA`: fine-tune the intent encoder (and ``--rollback`` it).

``--method full`` (default) fine-tunes encoder + head with cross-entropy; ``--method contrastive``
tunes the encoder SetFit-style and fits a logistic-regression head on it
(:mod:`csassist.core.learn.intent_contrastive`).  ``DATA`` is a labelled file, or a KB directory:
then the rows are exactly what ``csassist index`` fits the index head on (``intents.csv`` + the
articles' titles and questions), so the fine-tuned model replaces the head having learned from the
same examples.

The options are declared in finetune.py (shared with ``--from-log``); this module runs the intent
side: read the data, train with a progress bar (or, with ``--json``, one JSON object per progress
event on stderr), print the classification report, save a version in the intent model store and
promote it.  The plan and a time estimate (from the first timed steps) are printed before the bulk
of the training; ``--time-budget`` stops it cleanly, keeping the best checkpoint.
``--rollback --rollback-target intent`` returns to the model promoted before the current one.
"""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    """Train (or roll back) and report."""
    import json
    import sys
    from pathlib import Path

    from csassist.commands.common import open_workspace
    from csassist.core.learn import intent_finetune as ft
    from csassist.core.learn import intent_promotion
    from csassist.core.learn.store import intent_store
    from csassist.core.understand.intent_data import load_labelled_file

    workspace = open_workspace()  # config warnings, printed the way every command prints them
    out_root = Path(args.out).expanduser() if getattr(args, "out", None) else None
    if args.rollback:
        was = intent_store(out_root).current()
        now = intent_promotion.rollback(out_root)
        result = {"current": now.name if now else None, "previous": was.name if was else None}
        if args.json:
            print(json.dumps(result))
        elif now is None:
            print(f"rolled back: {result['previous']} is no longer used; the intent head from the index is used again")
        else:
            print(f"rolled back: now using {now.name} (was {result['previous']})")
        return 0

    data = Path(args.intents).expanduser()
    if data.is_dir():  # a KB: the index head's own training rows
        from csassist.core.learn.kb_examples import intent_training_examples

        train = intent_training_examples(data, max_file_bytes=workspace.settings.retrieval.max_kb_file_bytes)
        problems: list[str] = []
    else:
        train, problems = load_labelled_file(data)
    val = None
    if args.val:
        val, val_problems = load_labelled_file(Path(args.val).expanduser())
        problems += val_problems
    for p in problems[:10]:
        print(f"warning: {p}", file=sys.stderr)
    if len(problems) > 10:
        print(f"warning: ... and {len(problems) - 10} more skipped rows", file=sys.stderr)

    args.embedder_id = workspace.settings.retrieval.embedder or None  # the second opinion reads the app's embedder
    cfg = _contrastive_config(args) if getattr(args, "method", "full") == "contrastive" else _full_config(args, ft)
    report = _train_with_progress(intent_promotion, train, val, cfg, out_root, quiet=args.json, force=args.force)
    if args.json:
        print(json.dumps(report))
        return 0
    _print_report(report)
    return 0


def _full_config(args: argparse.Namespace, ft: Any) -> Any:
    """The full fine-tuning recipe (``ft`` is intent_finetune, imported lazily) with the command's overrides."""
    cfg = ft.FinetuneConfig()
    overrides: dict[str, Any] = {
        "base": args.base, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
        "weight_decay": args.weight_decay, "warmup": args.warmup, "dropout": args.dropout,
        "freeze": args.freeze, "val_split": args.val_split, "patience": args.patience, "seed": args.seed,
        "max_steps": args.max_steps, "time_budget_s": getattr(args, "time_budget", None),
        "head_init": getattr(args, "head_init", None),
        "embedder": getattr(args, "embedder_id", None),
    }
    if getattr(args, "no_second_opinion", False):
        cfg.second_opinion = False
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    if cfg.freeze not in ("none", "embeddings") and not str(cfg.freeze).isdigit():
        from csassist.core.errors import DataError

        raise DataError(f"--freeze must be none, embeddings or a number of layers, not {cfg.freeze!r}")
    return cfg


def _contrastive_config(args: argparse.Namespace) -> Any:
    """The contrastive recipe with the command's overrides (``--max-steps`` is its number of steps)."""
    from csassist.core.learn.intent_contrastive import ContrastiveConfig

    cfg = ContrastiveConfig()
    overrides: dict[str, Any] = {
        "base": args.base, "lr": args.lr, "steps": args.max_steps, "weight_decay": args.weight_decay,
        "val_split": args.val_split, "seed": args.seed, "time_budget_s": getattr(args, "time_budget", None),
        "embedder": getattr(args, "embedder_id", None),
    }
    if getattr(args, "no_second_opinion", False):
        cfg.second_opinion = False
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    if args.batch_size:  # batches are intents x examples: --batch-size sets how many intents
        cfg.intents_per_batch = max(2, args.batch_size // cfg.per_intent)
    return cfg


def _train_with_progress(ft, train, val, cfg, out_root, *, quiet: bool, force: bool) -> dict:  # type: ignore[no-untyped-def]
    """Run the training with a rich progress bar showing the loss; with --json, JSON lines on stderr."""
    import json
    import sys

    if quiet:
        def json_lines(event: dict) -> None:
            sys.stderr.write(json.dumps(event) + "\n")
            sys.stderr.flush()

        return ft.finetune_intents(train, val, cfg, out_root=out_root, progress=json_lines, force=force)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TextColumn("val {task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=None, epoch=1, loss=float("nan"), val="-")

        def progress(event: dict) -> None:
            kind = event["event"]
            if kind == "start":
                budget = event["time_budget_s"]
                console.print(
                    ("contrastive: " if event.get("method") == "contrastive" else "")
                    + f"training on {event['train_examples']} examples, {event['labels']} intents "
                    f"(validation {event['val_examples']} + {event['val_oos_examples']} oos): "
                    f"up to {event['planned_steps']} steps"
                    + (f", time budget {_duration(budget)}" if budget else ""),
                    markup=False, highlight=False,
                )
            elif kind == "estimate":
                console.print(
                    f"estimated {_duration(event['estimated_seconds'])} "
                    f"({event['seconds_per_step']:.2f} s/step for {event['planned_steps']} steps)",
                    markup=False, highlight=False,
                )
            elif kind == "probe":
                console.print(
                    f"head started as a linear probe of the frozen encoder "
                    f"(train accuracy {event['probe_train_accuracy']:.3f}, {_duration(event['probe_seconds'])})",
                    markup=False, highlight=False,
                )
            elif kind == "second_opinion":
                console.print(f"frozen-embedder head fitted for the second opinion ({_duration(event['fit_seconds'])})",
                              markup=False, highlight=False)
            elif kind == "step":
                bar.update(task, completed=event["step"], total=event["total_steps"], epoch=event["epoch"],
                           loss=event["loss"])
            elif kind == "eval":
                bar.update(task, val=f"{event['val_accuracy']:.3f}")
            elif kind == "budget":
                console.print(f"time budget used up at step {event['step']}: stopping, keeping the best checkpoint",
                              markup=False, highlight=False)

        return ft.finetune_intents(train, val, cfg, out_root=out_root, progress=progress, force=force)


def _duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``1.2 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _print_report(r: dict) -> None:
    """Classification report on the validation split, then where the model went."""
    print(f"\nvalidation ({r['val_source']}): {r['val_examples']} in scope, {r['val_oos_examples']} oos")
    if r["unknown_val_labels"]:
        print(f"warning: validation labels not in training data (ignored): {', '.join(r['unknown_val_labels'])}")
    per = r["per_intent"]
    if per:
        print(f"{'intent':<44} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}")
        for name, m in sorted(per.items()):
            print(f"{name[:44]:<44} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1-score']:>6.3f} {int(m['support']):>5}")
    acc = r["val_accuracy"]
    print(f"\naccuracy {acc:.2%}" if acc is not None else "\naccuracy n/a (no validation data)", end="")
    if r["val_macro_f1"] is not None:
        print(f"   macro-F1 {r['val_macro_f1']:.2%}", end="")
    print(f"   OOS threshold {r['threshold']:.3f}" + (f" (OOS recall {r['oos_recall']:.2%})" if r["oos_recall"] is not None else ""))
    second = r.get("second_opinion")
    if second:
        print(f"second opinion (frozen head on {second['encoder']}): "
              + (f"mixed in at {second['weight']:.0%}, validation {second['val_accuracy_alone']:.2%} alone -> "
                 f"{second['val_accuracy_mixed']:.2%} mixed" if second["weight"] > 0
                 else f"not used (did not help on validation: {second['val_accuracy_alone']:.2%} alone)"))
    print(f"{r['steps']} steps, {r['epochs_run']} epoch(s), best at step {r['best_step']}"
          f"{' (stopped early)' if r['stopped_early'] else ''}, {r['train_seconds']:.0f} s")
    if r.get("stopped_by_budget"):
        print(f"stopped by the time budget ({r['time_budget_s']:.0f} s); the best checkpoint was kept")
    print(f"saved {r['model_dir']} (version {r['version']})")
    if r["promoted"]:
        print("promoted: the app now uses this model (roll back with `csassist finetune --rollback --rollback-target intent`)")
    else:
        prev = r.get("previous_val_accuracy")
        print(f"not promoted: the current model scores {prev:.2%} on this validation set (use --force to promote anyway)"
              if prev is not None else "not promoted")

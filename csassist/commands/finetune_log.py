"""`csassist finetune --from-log` and `--rollback`: the command face of csassist.core.learn.finetune_log.

Thin on purpose: it maps options to a :class:`TrainConfig`, shows a rich progress bar with the loss,
and prints the result.  Every decision (data, training, promotion) lives in the core module so the
benchmark and the tests run exactly the same code.
"""

from __future__ import annotations

import argparse
from typing import Any


def _config(args: argparse.Namespace) -> Any:
    """TrainConfig from the parsed options (unset options keep the core defaults)."""
    from csassist.core.learn.finetune_log import TrainConfig

    values: dict[str, Any] = {}
    for option, name in (
        ("epochs", "epochs"),
        ("lr", "lr"),
        ("batch_size", "batch_size"),
        ("lora_r", "lora_r"),
        ("val_split", "val_split"),
        ("patience", "patience"),
        ("seed", "seed"),
        ("max_steps", "max_steps"),
        ("weight_decay", "weight_decay"),
        ("warmup", "warmup"),
        ("max_length", "max_length"),
        ("eval_examples", "gen_eval_cap"),
        ("min_pairs", "min_pairs"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            values[name] = value
    return TrainConfig(**values)


def _print_summary(summary: dict[str, Any], console: Any) -> None:
    """The data summary as tables (already-redacted examples included)."""
    from rich.table import Table

    counts = Table(title="Feedback log", title_justify="left")
    counts.add_column("what")
    counts.add_column("count", justify="right")
    for outcome, n in summary["events_by_outcome"].items():
        counts.add_row(f"events {outcome}", str(n))
    for key in ("candidate_pairs", "duplicates_dropped", "skipped_empty", "pairs", "train", "val"):
        counts.add_row(key.replace("_", " "), str(summary[key]))
    console.print(counts)
    intents = Table(title="Pairs by intent", title_justify="left")
    intents.add_column("intent")
    intents.add_column("pairs", justify="right")
    for intent, n in summary["pairs_by_intent"].items():
        intents.add_row(intent, str(n))
    console.print(intents)
    for example in summary.get("examples", []):
        console.print(f"[{example['outcome']}] {example['intent']}", style="bold", markup=False)
        console.print(f"  prompt: {example['prompt_end']}", markup=False)
        console.print(f"  reply:  {example['reply']}", markup=False)


def run(args: argparse.Namespace) -> int:
    """Dry-run summary, full fine-tune, or rollback."""
    import json
    from pathlib import Path

    from rich.console import Console

    from csassist.commands.common import open_workspace
    from csassist.core.learn import finetune_log as core
    from csassist.core.learn.feedback import FeedbackLog

    workspace = open_workspace()
    console = Console(stderr=bool(args.json))
    out = Path(args.out) if args.out else None
    if args.rollback:
        now = core.rollback(out)
        message = f"current adapter: {now}" if now else "no adapter promoted: the base model is used"
        print(json.dumps({"current": now}) if args.json else message)
        return 0

    config = _config(args)
    url = getattr(args, "store", None) or (None if args.log else workspace.settings.store.url or None)
    log = FeedbackLog(url=url) if url else FeedbackLog(Path(args.log) if args.log else None)
    with log:
        if args.dry_run:
            dataset = core.build_dataset(log, config.val_split, config.seed, config.min_pairs, enforce_min=False)
            if args.json:
                print(json.dumps(dataset.summary, indent=2))
            else:
                _print_summary(dataset.summary, console)
                if not dataset.summary["enough_data"]:
                    console.print(
                        f"not enough data to train yet: {dataset.summary['pairs']} pair(s), "
                        f"at least {config.min_pairs} needed",
                        markup=False,
                    )
                console.print("dry run: nothing trained", markup=False)
            return 0
        core.build_dataset(log, config.val_split, config.seed, config.min_pairs)  # refuse before loading models
        result = _train(workspace, log, config, args, out, console)
    if not result.metrics:  # not the main process of a multi-process run
        return 0
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_result(result, console)
    return 0


def _train(workspace: Any, log: Any, config: Any, args: argparse.Namespace, out: Any, console: Any) -> Any:
    """Run the core fine-tune under a progress bar, then refit intents from corrections.

    The encoder is the workspace's configured one (``[retrieval] embedder``): the refitted intent head
    must be the one the app then loads, and the app refuses a head fitted with another embedder.
    """
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from csassist.core.learn import finetune_log as core

    # The configured embedder ([retrieval] embedder), never silently the default: a head refitted on
    # another embedder than the app's would be refused at load time and the app would run without intents.
    encoder = workspace.encoder()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=int(os.environ.get("RANK", "0")) != 0,  # one bar per torchrun/accelerate job, not per process
    ) as bar:
        task = bar.add_task("loading", total=1, info="")

        def progress(event: dict[str, Any]) -> None:
            info = ""
            if event.get("loss") is not None:
                info = f"loss {event['loss']:.3f}"
            if event.get("val_loss") is not None:
                info += f" val {event['val_loss']:.3f}"
            bar.update(task, description=event["phase"], completed=event["step"], total=event["total"], info=info)

        result = core.finetune_from_log(
            log, config, base=args.base, out=out, force=args.force, encoder=encoder, progress=progress
        )
    if not result.metrics:  # another process of an `accelerate launch` / `torchrun` job: main reports
        return result
    if not getattr(args, "no_intents", False):
        result.intent_refit = refit_intents(log, workspace, encoder)
    return result


def refit_intents(log: Any, workspace: Any, encoder: Any) -> dict[str, Any] | None:
    """Refit the intent model in use with the log's corrections (a new, promoted store version)."""
    from csassist.core.knowledge.kb import load_kb
    from csassist.core.learn.intent_promotion import refit_with_corrections

    examples = load_kb(workspace.kb_dir).intent_examples
    return refit_with_corrections(log.events(), examples, index_dir=workspace.index_dir, encoder=encoder)


def _print_result(result: Any, console: Any) -> None:
    """Before/after table and the promotion verdict."""
    from rich.table import Table

    m = result.metrics
    if not m:
        return
    table = Table(title="Before / after", title_justify="left")
    for column in ("metric", "base", "adapter"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    table.add_row("validation loss", f"{m['val_loss_before']:.4f}", f"{m['val_loss_after']:.4f}")
    gen = m.get("generation")
    if gen:
        for key in ("rouge_l", "embedding_cosine"):
            b, a = gen["before"].get(key), gen["after"].get(key)
            if b is not None and a is not None:
                table.add_row(f"{key} (n={gen['before']['n']})", f"{b:.4f}", f"{a:.4f}")
    console.print(table)
    console.print(f"trained {m['steps']} steps in {m['train_seconds']:.0f} s; saved {result.adapter_dir}", markup=False)
    verdict = "promoted" if result.promoted else "NOT promoted (use --force to promote anyway)"
    console.print(f"{verdict}: {result.reason}", markup=False)
    refit = result.intent_refit
    if refit:
        console.print(
            f"intent model refitted with {refit['corrections_used']} correction(s) on {refit['built_on']}; "
            f"now in use: {refit['version']} (roll back with `csassist finetune --rollback --rollback-target intent`)",
            markup=False,
        )

"""`csassist finetune`: one command, two kinds of learning.

``--intents DATA`` fully fine-tunes the intent encoder (see finetune_intents.py);
``--from-log`` trains a LoRA adapter for the reply generator from the feedback log and refits the
intent model with the agent's corrections (see finetune_log.py).  The options of both live here so
``csassist finetune --help`` shows everything in one place.
"""

from __future__ import annotations

import argparse
import importlib


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``finetune`` and its options."""
    p = sub.add_parser("finetune", help="fine-tune the intent model (--intents) or the reply generator (--from-log)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--intents", metavar="DATA.csv|jsonl|KB_DIR",
                      help="labelled utterances (text,label; label oos = out of scope), or a KB directory: its "
                      "intents.csv plus the titles and questions of its articles, as `csassist index` learns them")
    what.add_argument("--from-log", action="store_true", help="learn from accepted/edited suggestions in the feedback log")
    what.add_argument("--rollback", action="store_true", help="return to the model/adapter promoted before the current one")
    what.add_argument("--promote", metavar="VERSION", help="make a saved version current again (see `csassist models`)")
    p.add_argument("--rollback-target", choices=("adapter", "intent"), default="adapter",
                   help="which store --rollback/--promote act on (default adapter)")
    p.add_argument("--method", choices=("full", "contrastive"), default="full",
                   help="--intents: full = fine-tune encoder + head with cross-entropy (default); contrastive = "
                   "SetFit-style: tune the encoder so examples of one intent embed close, then fit a "
                   "logistic-regression head (better with ~20 examples an intent)")
    p.add_argument("--val", metavar="DATA", help="--intents: validation file (default: carved from train)")
    p.add_argument("--base", metavar="MODEL", help="base model (intent encoder or generator)")
    p.add_argument("--epochs", type=int, help="maximum epochs (--method full)")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--batch-size", type=int, help="batch size")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--warmup", type=float, default=0.1, help="warmup share of the steps")
    p.add_argument("--dropout", type=float, help="--intents: classifier dropout")
    p.add_argument("--freeze", default="none", help="--intents: none | embeddings | N (lowest N layers)")
    p.add_argument("--head-init", choices=("auto", "probe", "random"),
                   help="--intents --method full: start the head as a linear probe of the frozen encoder (LP-FT) or at "
                        "random; auto (default): the probe when the median intent has fewer than 60 examples")
    p.add_argument("--no-second-opinion", action="store_true",
                   help="--intents: do not mix a head on the frozen embedder into the fine-tuned model")
    p.add_argument("--lora-r", type=int, default=8, help="--from-log: LoRA rank")
    p.add_argument("--val-split", type=float, default=0.1, help="validation share when carved from train")
    p.add_argument("--patience", type=int, default=2, help="early stopping: evaluations without improvement")
    p.add_argument("--seed", type=int, default=13, help="random seed")
    p.add_argument("--max-steps", type=int, help="cap on optimiser steps (quick runs); --method contrastive: the number of steps (default 120)")
    p.add_argument(
        "--time-budget",
        type=parse_duration,
        metavar="SECONDS|25m|1h30m",
        help="--intents: stop training cleanly when this much time is used, keeping the best checkpoint",
    )
    p.add_argument("--log", metavar="PATH", help="--from-log: feedback log (default: the user data dir)")
    p.add_argument("--store", metavar="URL", help="--from-log: the team store (postgresql://...): every agent's "
                   "accepted/edited replies (default: [store] url when set, else the local log)")
    p.add_argument("--out", metavar="DIR", help="where versioned models go (default: the user models dir)")
    p.add_argument("--dry-run", action="store_true", help="--from-log: print the data summary only")
    p.add_argument("--force", action="store_true", help="promote even if the new model is not better")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--max-length", type=int, help="--from-log: max tokens per training example (prompt + reply)")
    p.add_argument("--eval-examples", type=int, help="--from-log: validation replies generated for before/after")
    p.add_argument("--min-pairs", type=int, help="--from-log: refuse below this many pairs (default 20)")
    p.add_argument("--no-intents", action="store_true", help="--from-log: skip refitting the intent model")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``25m``, ``1h30m`` or ``1.5h`` (argparse type: a clear error otherwise)."""
    import re

    clean = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", clean):
        seconds = float(clean)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", clean)
        if not parts or "".join(n + u for n, u in parts) != clean:
            raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use seconds or e.g. 25m, 1h30m")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the time budget must be positive")
    return seconds


def run(args: argparse.Namespace) -> int:
    """Dispatch to the intent or generator fine-tuning command (or promote a saved version)."""
    if args.promote:
        return _promote(args)
    if args.intents or (args.rollback and args.rollback_target == "intent"):
        module = importlib.import_module("csassist.commands.finetune_intents")
    else:
        module = importlib.import_module("csassist.commands.finetune_log")
    return int(module.run(args))


def _promote(args: argparse.Namespace) -> int:
    """``--promote VERSION``: push a saved version on its store's promotion stack (rollback pops it again)."""
    import json
    from pathlib import Path

    from csassist.core.learn.store import adapter_store, intent_store

    root = Path(args.out).expanduser() if args.out else None
    store = intent_store(root) if args.rollback_target == "intent" else adapter_store(root)
    before = store.current()
    version = store.promote(args.promote)
    if args.json:
        print(json.dumps({"current": version.name, "previous": before.name if before else None}))
    else:
        print(f"promoted: now using {version.name} ({store.kind}; was {before.name if before else 'the base model'})")
    return 0

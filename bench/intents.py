"""BANKING77 intent benchmark: (a) head on frozen MiniLM embeddings, (b) full encoder fine-tuning.

Trains on ../shared/datasets/banking77/train.csv, tests on test.csv (3,080 rows, 40 per intent),
reports accuracy, macro-F1, training time and single-message classify latency (p50/p95), prints a
table and merges its results into bench/results/intents.json (each part can be run on its own).

    python bench/intents.py --part a            # head: ~2 min
    python bench/intents.py --part b --budget 1680   # fine-tuning, sized to the budget (seconds)
    python bench/intents.py --part a --quick    # 1,000 training rows, smoke test

Run it under ``flock /tmp/csassist-cpu.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from csassist.core.knowledge.embedder import configure_threads, load_encoder  # noqa: E402
from csassist.core.learn.intent_eval import evaluate_intents  # noqa: E402
from csassist.core.learn.intent_finetune import FinetuneConfig  # noqa: E402
from csassist.core.learn.intent_head import fit_intent_head  # noqa: E402
from csassist.core.learn.intent_promotion import finetune_intents  # noqa: E402
from csassist.core.understand.intent import ORIGIN_STORE  # noqa: E402
from csassist.core.understand.intent_data import load_labelled_file  # noqa: E402
from csassist.core.understand.intent_format import load_head, read_model  # noqa: E402

#: The datasets folder beside the checkout; CSASSIST_DATASETS points elsewhere (e.g. from a worktree).
DATA = Path(os.environ.get("CSASSIST_DATASETS") or ROOT.parent / "shared" / "datasets") / "banking77"
RESULTS = ROOT / "bench" / "results" / "intents.json"


def _summary(ev: dict) -> dict:
    """The headline numbers of an evaluation (the full per-intent report is kept separately)."""
    keys = ("accuracy", "macro_f1", "latency_ms_p50", "latency_ms_p95", "batch_ms_per_message", "examples")
    return {k: ev[k] for k in keys}


def part_a(train, test, threads: int) -> dict:
    """Head on frozen embeddings: embed + logistic regression + OOS-threshold hold-out fit."""
    configure_threads(threads)
    encoder = load_encoder()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = fit_intent_head(train, encoder, Path(tmp) / "intent")
        train_s = time.perf_counter() - t0
        model = load_head(Path(tmp) / "intent", encoder)
        configure_threads(1)  # latency as the app runs it: one thread
        ev = evaluate_intents(model, test)
    return {"train_seconds": round(train_s, 1), "embed_seconds": report["embed_seconds"],
            "threshold": report["threshold"], **_summary(ev), "per_intent": ev["per_intent"],
            "worst_confusions": ev["worst_confusions"], "C": report["C"]}


def part_b(train, test, threads: int, budget: float | None, epochs: int, lr: float, batch: int,
           head_init: str = "auto", keep_model: Path | None = None) -> dict:
    """Full fine-tuning with a time budget; evaluates the best checkpoint on the test set."""
    cfg = FinetuneConfig(epochs=epochs, lr=lr, batch_size=batch, threads=threads, time_budget_s=budget,
                         val_split=0.05, label_smoothing=0.1, dropout=0.1, max_length=64, patience=2,
                         head_init=head_init)
    last = {"t": time.perf_counter()}

    def progress(event: dict) -> None:
        if event["event"] in ("start", "estimate", "budget", "probe"):
            print(f"  {event}", flush=True)
        elif event["event"] == "eval":
            print(f"  eval step {event['step']} epoch {event['epoch']}: val acc {event['val_accuracy']:.4f}", flush=True)
        elif event["event"] == "step" and event["step"] % 50 == 0:
            now = time.perf_counter()
            print(f"  step {event['step']}/{event['total_steps']} loss {event['loss']:.3f} "
                  f"({(now - last['t']) / 50:.2f} s/step)", flush=True)
            last["t"] = now

    with tempfile.TemporaryDirectory() as tmp:
        report = finetune_intents(train, None, cfg, out_root=keep_model or Path(tmp), progress=progress,
                                  promote_model=False)
        configure_threads(1)  # latency as the app runs it: one thread
        model = read_model(Path(report["model_dir"]), origin=ORIGIN_STORE, version=report["version"])
        ev = evaluate_intents(model, test)
        alone = None
        if model.second_opinion is not None:  # the ablation: the fine-tuned model without its second opinion
            alone = _summary(evaluate_intents(dataclasses.replace(model, second_opinion=None), test))
    return {"train_seconds": report["train_seconds"], "steps": report["steps"], "epochs_run": report["epochs_run"],
            "second_opinion": report.get("second_opinion"), "without_second_opinion": alone,
            "best_step": report["best_step"], "val_accuracy": report["val_accuracy"], **_summary(ev),
            "config": report["config"], "history": report["history"], "per_intent": ev["per_intent"],
            "worst_confusions": ev["worst_confusions"],
            **{k: report[k] for k in ("probe_seconds", "probe_train_accuracy") if k in report}}


def main() -> int:
    """Run the requested parts, print a table, merge into the results JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "ab"), default="a")
    parser.add_argument("--quick", action="store_true", help="1,000 training and 400 test rows")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--budget", type=float, default=1680.0, help="(b) training budget in seconds (0: none)")
    parser.add_argument("--head-init", choices=("auto", "probe", "random"), default="auto",
                        help="(b) the head's start: auto (default: a linear probe below 60 rows an intent), probe or random")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1.5e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--keep-model", type=Path, default=None,
                        help="(b) save the fine-tuned model under this folder instead of a temporary one")
    args = parser.parse_args()
    train, _ = load_labelled_file(DATA / "train.csv")
    test, _ = load_labelled_file(DATA / "test.csv")
    if args.quick:
        train, test = train[::10], test[::8]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "note": "2-core CPU shared with 6 other agents; numbers are noisy"}
    results["dataset"] = {"train": len(train), "test": len(test), "quick": args.quick}
    if "a" in args.part:
        print("(a) head on frozen all-MiniLM-L6-v2 embeddings ...", flush=True)
        results["head"] = part_a(train, test, args.threads)
    if "b" in args.part:
        print(f"(b) full fine-tuning, budget {args.budget:.0f} s ...", flush=True)
        results["finetuned"] = part_b(train, test, args.threads, args.budget or None, args.epochs, args.lr,
                                      args.batch_size, args.head_init, args.keep_model)
    results["targets"] = {"head_accuracy": 0.93, "head_train_seconds": 180, "finetuned_accuracy": 0.94,
                          "finetuned_train_seconds": 1800, "latency_ms_p95": 15}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\n{'model':<28} {'accuracy':>9} {'macro-F1':>9} {'train s':>8} {'p50 ms':>7} {'p95 ms':>7}")
    finetuned = results.get("finetuned") or {}
    table = dict(results)
    rows: tuple[tuple[str, str], ...] = (("head", "(a) frozen MiniLM + LR head"), ("finetuned", "(b) full fine-tuning"))
    if finetuned.get("without_second_opinion"):
        table["finetuned_alone"] = {**finetuned["without_second_opinion"], "train_seconds": finetuned["train_seconds"]}
        rows = (rows[0], ("finetuned_alone", "(b) fine-tuned alone"), ("finetuned", "(b) + second opinion"))
    for key, name in rows:
        r = table.get(key)
        if r:
            print(f"{name:<28} {r['accuracy']:>9.4f} {r['macro_f1']:>9.4f} {r['train_seconds']:>8.1f} "
                  f"{r['latency_ms_p50']:>7.2f} {r['latency_ms_p95']:>7.2f}")
    print(f"\nwritten {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

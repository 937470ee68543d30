"""Contrastive (SetFit-style) intent fine-tuning vs the frozen index head, on the dev set, variant by variant.

Trains :func:`csassist.core.learn.intent_contrastive.train_contrastive_model` on the KB's examples
exactly as ``csassist index`` / ``csassist finetune --intents kb/`` see them (``intents.csv`` + the
articles' titles and questions), never on ``--data`` (the dev set), and scores each variant on the dev
set twice: with the model's own softmax cut-off and as the app runs it (the index's OOS detector,
the KB's vote, typo repair).  A model that carries a second opinion is scored without it too.  The first row is the frozen index head of ``--index``.  Prints a table and writes
``bench/results/intent_contrastive.json`` (one run: compare rows of the same run).

    python bench/intent_contrastive.py --index /tmp/idx                      # build the index first if missing
    python bench/intent_contrastive.py --index /tmp/idx --variants default,steps60
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from csassist.core.knowledge.embedder import configure_threads, load_encoder  # noqa: E402
from csassist.core.knowledge.retrieval import Retriever  # noqa: E402
from csassist.core.learn.evaluation import intent_metrics, load_eval_queries  # noqa: E402
from csassist.core.learn.intent_contrastive import ContrastiveConfig, train_contrastive_model  # noqa: E402
from csassist.core.learn.kb_examples import intent_training_examples  # noqa: E402
from csassist.core.understand.intent_format import load_head, write_model  # noqa: E402
from csassist.core.understand.stack import attach_kb  # noqa: E402
from csassist.core.workspace import Workspace  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "intent_contrastive.json"
#: name -> overrides of ContrastiveConfig (the default is the lead's prototype + the 10 % validation split).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-refit": {"refit_head": False},
    "mix0.5": {"mix": 0.5},
    "mix0.7": {"mix": 0.7},
    "all-data": {"val_split": 0.0},
    "steps60": {"steps": 60},
    "lr1.5e-5": {"lr": 1.5e-5},
    "typo25": {"typo_share": 0.25},
    "hardneg": {"hard_negatives": True},
    "temp0.1": {"temperature": 0.1},
    "C5": {"head_c": 5.0},
    "no-second": {"second_opinion": False},
}


def _pct(value: float | None) -> str:
    return "  n/a" if value is None else f"{value * 100:5.1f}"


def score(model: Any, index_dir: Path, retriever: Retriever, encoder: Any, queries: list[Any]) -> dict[str, Any]:
    """Dev-set figures for ``model`` alone (softmax cut-off) and as the app runs it: with the index's OOS
    detector, the KB's vote and the retriever's reading (typo repair), i.e. what ``csassist eval intents`` answers."""
    texts = [q.text for q in queries]
    plain = intent_metrics(queries, model.predict_batch(texts))
    wrapped = attach_kb(model, index_dir, encoder, retriever)
    with_detector = intent_metrics(queries, wrapped.predict_batch(texts))
    return {"softmax_cutoff": plain, "detector": with_detector}


def row_line(name: str, result: dict[str, Any]) -> str:
    """One table row: closed-set, top-3, by-kind closed-set, then the detector's after-OOS/recall/flagged."""
    o = result["detector"]["overall"]
    k = result["detector"]["by_kind"]
    kinds = "".join(f" {_pct(k.get(n, {}).get('closed_set_accuracy'))}" for n in KINDS)
    return (f"{name:<14} {_pct(o['closed_set_accuracy'])} {_pct(o['top3_accuracy'])}{kinds}"
            f"  {_pct(o['in_scope_accuracy_after_oos'])} {_pct(o['oos_recall'])} {_pct(o['in_scope_flagged_oos'])}"
            f"  {_pct(result['softmax_cutoff']['overall']['oos_recall'])} {_pct(result['softmax_cutoff']['overall']['in_scope_flagged_oos'])}"
            f"  {result.get('seconds', 0):>5.0f}")


KINDS = ("plain", "indirect", "typo", "long", "multi", "angry", "non-native")


def main() -> int:
    """Build the index if needed, score the frozen head, train and score each variant; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", type=Path, default=ROOT / "kb")
    parser.add_argument("--data", type=Path, default=ROOT / "kb" / "eval" / "queries.jsonl")
    parser.add_argument("--index", type=Path, required=True, help="index dir (built there when missing)")
    parser.add_argument("--variants", default="default", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--save", type=Path, help="also save each trained model under DIR/<variant> (for eval --model)")
    args = parser.parse_args()
    configure_threads(1)
    if not (args.index / "manifest.json").exists():
        Workspace().build_index(args.kb, args.index)
    queries, _ = load_eval_queries(args.data)
    examples = intent_training_examples(args.kb)
    encoder = load_encoder()
    retriever = Retriever.open(args.index, encoder)
    header = (f"{'model':<14} {'closed':>5} {'top-3':>5}" + "".join(f" {n[:5]:>5}" for n in KINDS)
              + "  after  OOSr  flag   cutR cutFl    sec")
    print(f"{'':<14} {'(closed-set by kind)':>40} {'(with the OOS detector)':>40} (own cut-off)")
    print(header)
    results: dict[str, Any] = {}
    head = load_head(args.index / "intent", encoder)
    results["frozen head"] = score(head, args.index, retriever, encoder, queries)
    print(row_line("frozen head", results["frozen head"]), flush=True)
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        cfg = ContrastiveConfig(**VARIANTS[name])
        started = time.perf_counter()
        trained = train_contrastive_model(examples, None, cfg)
        if args.save:
            (args.save / name).mkdir(parents=True, exist_ok=True)
            write_model(trained.model, args.save / name)
        result = score(trained.model, args.index, retriever, encoder, queries)
        result.update({"seconds": round(time.perf_counter() - started, 1), "config": VARIANTS[name],
                       "val_accuracy": trained.model.report["val_accuracy"],
                       "first_loss": trained.model.report["first_loss"], "final_loss": trained.model.report["final_loss"]})
        results[name] = result
        print(row_line(name, result), flush=True)
        if trained.model.second_opinion is not None:  # the ablation, from the same trained body
            alone = score(dataclasses.replace(trained.model, second_opinion=None), args.index, retriever, encoder, queries)
            alone["second_opinion"] = trained.model.report.get("second_opinion")
            results[f"{name} alone"] = alone
            print(row_line(f"{name} alone", alone), flush=True)
        _write(args.out, args, results, len(examples))
    _write(args.out, args, results, len(examples))
    return 0


def _write(path: Path, args: argparse.Namespace, results: dict[str, Any], n_train: int) -> None:
    """Results so far (a long run can be stopped and still leave its rows)."""
    existing: dict[str, Any] = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8")).get("results", {})
        except ValueError:
            existing = {}
    payload = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, shared; 1 torch thread",
        "data": str(args.data.relative_to(ROOT)) if args.data.is_relative_to(ROOT) else str(args.data),
        "train_examples": n_train,
        "note": "trained on the KB's examples (intents.csv + article titles/questions), scored on the dev set",
        "results": {**existing, **results},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())

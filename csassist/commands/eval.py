"""`csassist eval intents|retrieval --data FILE`: measure the engine on labelled data, overall and by kind.

``eval intents``: accuracy, macro-F1, per-intent precision/recall/F1, the worst confusion pairs,
single-message latency p50/p95, and -- from :mod:`csassist.core.learn.evaluation` -- by kind:
closed-set accuracy, top-3 accuracy, in-scope accuracy after the out-of-scope verdict, real questions
flagged out of scope, OOS precision and recall, and OOS recall at in-scope accuracy 0.90/0.95.
``--json`` prints one object with at least ``accuracy``, ``macro_f1``, ``oos_recall`` (null when the
data has no ``oos`` rows), ``latency_ms_p50``, ``latency_ms_p95`` and ``by_kind``.

``eval retrieval``: hit@1/3/5 and MRR of the KB search (as the app runs it: hybrid, intent-boosted)
over the rows naming ``articles``, overall and by kind.

Both read CSV or JSONL (``text``, ``intent``, optional ``articles``, ``kind``, ``id``), load each model
once, predict in batches and report progress on stderr.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``eval`` and its options."""
    p = sub.add_parser("eval", help="evaluate intents or KB retrieval on labelled data (overall and by kind)")
    p.add_argument("what", choices=("intents", "retrieval"), help="what to evaluate")
    p.add_argument("--data", required=True, metavar="FILE.csv|jsonl", help="labelled data (text,intent[,articles,kind])")
    p.add_argument(
        "--model",
        metavar="DIR",
        help="an intent model directory (a version of the intent model store or a head) or an index directory "
        "(default: the model the app uses)",
    )
    p.add_argument("--index", metavar="DIR", help="index directory (default: configured)")
    p.add_argument("-k", type=int, default=5, help="retrieval: hits per query (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _load_model(model_arg: str | None, index_arg: str | None, workspace, encoder):  # type: ignore[no-untyped-def]
    """Resolve ``--model``: an intent model directory (a store version or a head) or an index directory.

    ``encoder`` reads the messages (the workspace's query encoder, as the app's: int8, sentence
    passes), for a model named by path too when it was fitted on the configured embedder -- else
    ``eval --model INDEX`` would score another reading of the messages than the app and ``analyze``
    give (float32 weights, whole-message passes: on the 409 dev messages the top intent of 7 and 13,
    the verdict of 5 and 2 differed on the shipped and the 7a33194 KB).  A model
    fitted on another embedder loads the one it references.
    """
    import re
    from pathlib import Path

    from csassist.core.errors import ModelMissingError
    from csassist.core.understand.intent import ORIGIN_STORE
    from csassist.core.understand.intent_format import read_model

    if model_arg:
        path = Path(model_arg).expanduser()
        if not (path / "meta.json").exists() and (path / "intent" / "meta.json").exists():
            path = path / "intent"
        if not (path / "meta.json").exists():
            raise ModelMissingError(f"{path}: not an intent model or index directory")
        version = path.name if re.match(r"^v\d{4,}-", path.name) else None  # a version of the intent model store

        def load(reader: Any) -> Any:
            if version:
                return read_model(path, reader, origin=ORIGIN_STORE, version=version)
            return read_model(path, reader)

        try:
            return load(encoder)
        except ModelMissingError:  # fitted on another embedder: read with the one it references
            return load(None)
    index_dir = Path(index_arg).expanduser() if index_arg else workspace.index_dir
    return workspace.intent_model(encoder, index_dir=index_dir)


def _progress(label: str):  # type: ignore[no-untyped-def]
    """A ``progress(done, total)`` callback printing ``label done/total`` lines on stderr."""
    import sys

    def report(done: int, total: int) -> None:
        print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return report


class _Remembered:
    """Answers ``predict_batch`` from predictions already made (the report must not predict twice);
    single ``predict`` calls still reach the model, so measured latency is real."""

    def __init__(self, model: Any, texts: list[str], predictions: list[Any]) -> None:
        self.model = model
        self.model_id = getattr(model, "model_id", "")
        self.labels = getattr(model, "labels", [])
        self.threshold = getattr(model, "threshold", 0.0)
        self._known = dict(zip(texts, predictions, strict=True))

    def describe(self) -> str:
        describe = getattr(self.model, "describe", None)
        return str(describe()) if callable(describe) else str(self.model_id)

    def predict(self, text: str) -> Any:
        return self.model.predict(text)

    def predict_batch(self, texts: list[str]) -> list[Any]:
        missing = [t for t in texts if t not in self._known]
        if missing:
            self._known.update(zip(missing, self.model.predict_batch(missing), strict=True))
        return [self._known[t] for t in texts]


def _index_dir(args: argparse.Namespace, workspace: Any) -> Any:
    """``--index`` or the configured index directory (``--model`` naming an index directory counts too)."""
    from pathlib import Path

    if args.index:
        return Path(args.index).expanduser()
    if args.model and (Path(args.model).expanduser() / "manifest.json").exists():
        return Path(args.model).expanduser()
    return workspace.index_dir


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    import sys
    from pathlib import Path

    from csassist.commands.common import open_workspace
    from csassist.core.errors import ModelMissingError
    from csassist.core.learn.evaluation import load_eval_queries
    from csassist.core.sanitize import terminal_safe_json
    from csassist.core.understand.stack import load_understanding

    workspace = open_workspace()
    queries, problems = load_eval_queries(Path(args.data).expanduser())
    for problem in problems[:10]:
        print(f"warning: {problem}", file=sys.stderr)
    if len(problems) > 10:
        print(f"warning: ... and {len(problems) - 10} more skipped rows", file=sys.stderr)
    workspace.configure_threads(1)  # single-message latency, measured as the app runs it
    index_dir = _index_dir(args, workspace)
    encoder = workspace.query_encoder()  # messages are read as the app reads them
    if args.what == "intents":
        model = _load_model(args.model, args.index, workspace, encoder)
    else:  # retrieval boosts by the model in use, when there is one
        try:
            model = workspace.intent_model(encoder, index_dir=index_dir)
        except ModelMissingError:
            model = None
    parts = None
    if not workspace.index_missing(index_dir) or args.what == "retrieval":
        parts = load_understanding(index_dir, encoder, intent_model=model)
        model = parts.intent_model
    from csassist.core.understand.own_words import own_words

    texts = [own_words(q.text) for q in queries]  # as the app reads a message: the customer's own words
    report = _retrieval(parts, queries, texts, args.k) if args.what == "retrieval" else _intents(model, queries, texts)
    report["skipped_rows"] = len(problems)
    if args.json:
        print(terminal_safe_json(report))
        return 0
    if args.what == "retrieval":
        _print_retrieval(report)
    else:
        _print_report(report)
    return 0


def _intents(model: Any, queries: list[Any], texts: list[str]) -> dict[str, Any]:
    """The intent report: the classic figures plus the by-kind OOS-aware ones."""
    import sys

    from csassist.core.errors import ModelMissingError
    from csassist.core.learn.evaluation import in_batches, intent_metrics
    from csassist.core.learn.intent_eval import evaluate_intents
    from csassist.core.types import IntentExample

    if model is None:
        raise ModelMissingError("no intent model: run `csassist index` to fit one from kb/intents.csv")
    predictions = in_batches(texts, model.predict_batch, progress=_progress("intents"))
    examples = [IntentExample(text=q.text, intent=q.intent) for q in queries]
    report = evaluate_intents(_Remembered(model, texts, predictions), examples)
    unknown = report["unknown_labels"]
    if unknown:
        listed = ", ".join(f"{label} ({n})" for label, n in sorted(unknown.items(), key=lambda kv: -kv[1])[:10])
        print(
            f"warning: {sum(unknown.values())} row(s) have labels the model does not know, counted as errors: {listed}",
            file=sys.stderr,
        )
    detail = intent_metrics(queries, predictions)
    report["overall"] = detail["overall"]
    report["by_kind"] = detail["by_kind"]
    report["oos_detector"] = any(p.oos_score is not None for p in predictions)
    return report


def _retrieval(parts: Any, queries: list[Any], texts: list[str], k: int) -> dict[str, Any]:
    """hit@k / MRR by kind, searching as the app does (intent-boosted when an intent model is there)."""
    from csassist.core.errors import IndexUnusableError
    from csassist.core.learn.evaluation import in_batches, retrieval_metrics
    from csassist.core.understand.stack import intent_distribution

    if parts is None or parts.retriever is None:
        raise IndexUnusableError("no usable KB index: run `csassist index kb/`" + (
            f" ({parts.notes[0]})" if parts is not None and parts.notes else ""))
    retriever = parts.retriever
    if parts.intent_model is not None:
        predictions = in_batches(texts, parts.intent_model.predict_batch, progress=_progress("intents"))
        distributions = [intent_distribution(p) for p in predictions]
    else:
        distributions = [{} for _ in texts]
    pairs = list(zip(texts, distributions, strict=True))

    def search(batch: list[Any]) -> list[Any]:
        found = retriever.search_many([t for t, _ in batch], k, intents=[d for _, d in batch])
        return [[p.article_id for p in hits] for hits in found]

    ranked = in_batches(pairs, search, progress=_progress("retrieval"))  # type: ignore[arg-type]
    report = retrieval_metrics(queries, ranked)
    report.update({"k": k, "hybrid": retriever.hybrid, "intent_boost": parts.intent_model is not None,
                   "index": str(retriever.index_dir)})
    return report


def _fmt(value: float | None, pct: bool = True) -> str:
    """A percentage (or ms) or 'n/a'."""
    if value is None:
        return "n/a"
    return f"{value:.2%}" if pct else f"{value:.1f}"


def _print_retrieval(r: dict[str, Any]) -> None:
    """hit@k and MRR table, overall then one row per kind."""
    print(f"index: {r['index']}  (hybrid {'on' if r['hybrid'] else 'off'}, intent boost "
          f"{'on' if r['intent_boost'] else 'off'}, k={r['k']})")
    print(f"\n{'kind':<14} {'n':>4} {'hit@1':>7} {'hit@3':>7} {'hit@5':>7} {'MRR':>7}")
    rows = [("overall", r["overall"]), *sorted(r["by_kind"].items())]
    for name, m in rows:
        mrr = "n/a" if m["mrr"] is None else f"{m['mrr']:.3f}"
        print(f"{name[:14]:<14} {m['n']:>4} {_fmt(m['hit@1']):>7} {_fmt(m['hit@3']):>7} {_fmt(m['hit@5']):>7} {mrr:>7}")


def _print_report(r: dict) -> None:
    """Plain-text report: headline numbers, by-kind table, per-intent table (worst first), confusions."""
    o = r["overall"]
    print(f"model:             {r.get('model_description') or r['model']}  (out-of-scope verdict: {'detector' if r['oos_detector'] else 'softmax cut-off'})")
    print(f"examples:          {r['examples']} ({r['in_scope_examples']} in scope, {r['oos_examples']} oos)")
    print(f"accuracy:          {_fmt(r['accuracy'])}   (closed set: top-1 ignoring the OOS verdict)")
    print(f"top-3 accuracy:    {_fmt(o['top3_accuracy'])}")
    print(f"macro-F1:          {_fmt(r['macro_f1'])}")
    print(f"in-scope accuracy: {_fmt(o['in_scope_accuracy_after_oos'])}   (right and not flagged out of scope)")
    print(f"in-scope flagged:  {_fmt(o['in_scope_flagged_oos'])}   (real questions called out of scope)")
    print(f"oos recall:        {_fmt(r['oos_recall'])}   precision {_fmt(o['oos_precision'])}   (threshold {r['threshold']:.3f})")
    for key, label in (("oos_recall_at_in_scope_accuracy", "accuracy"), ("oos_recall_at_in_scope_kept", "kept")):
        levels = ", ".join(f"{_fmt(v)} at in-scope {label} >= {lvl}" for lvl, v in o[key].items())
        print(f"oos recall at:     {levels}")
    print(f"latency:           p50 {_fmt(r['latency_ms_p50'], False)} ms, p95 {_fmt(r['latency_ms_p95'], False)} ms")
    print(f"\n{'kind':<12} {'n':>4} {'closed-set':>10} {'top-3':>7} {'after-OOS':>10} {'flagged':>8} {'oos rec':>8}")
    for name, m in r["by_kind"].items():
        print(f"{name[:12]:<12} {m['n']:>4} {_fmt(m['closed_set_accuracy']):>10} {_fmt(m['top3_accuracy']):>7} "
              f"{_fmt(m['in_scope_accuracy_after_oos']):>10} {_fmt(m['in_scope_flagged_oos']):>8} {_fmt(m['oos_recall']):>8}")
    per = sorted(r["per_intent"].items(), key=lambda kv: (kv[1]["f1"], kv[0]))
    if per:
        print(f"\n{'intent':<44} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}")
        for name, m in per:
            print(f"{name[:44]:<44} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>5}")
    if r["worst_confusions"]:
        print("\nworst confusions (gold -> predicted):")
        for c in r["worst_confusions"]:
            print(f"  {c['count']:>4}  {c['gold']} -> {c['predicted']}")

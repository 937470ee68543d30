"""`csassist analyze "text"`: show what the engine understands from one customer message.

Intent (top 3 and the out-of-scope verdict with its reason), the nearest training examples of the
intent, the best KB answers with the sentence that matched, entities, urgency with reasons, and the
redacted text.  Without an intent model it says to run ``csassist index`` and still prints the rest.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``analyze`` and its options."""
    p = sub.add_parser("analyze", help="show intent, entities, urgency and redacted text for one message")
    p.add_argument("text", help="the customer message (use - to read it from stdin)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--index", metavar="DIR", help="index directory holding the intent head (default: configured)")


def _analysis_dict(analysis, note: str | None, description: str | None = None, passages=()) -> dict:  # type: ignore[no-untyped-def]
    """A JSON-ready view of an Analysis (and the KB answers found for the message)."""
    pred = analysis.intent
    return {
        "intent": pred.intent,
        "top": [{"intent": s.intent, "probability": round(s.probability, 4)} for s in pred.top],
        "out_of_scope": pred.out_of_scope,
        "oos_score": None if pred.oos_score is None else round(pred.oos_score, 4),
        "oos_reason": pred.reason or None,
        "read_as": pred.read_as or None,
        "requests": list(pred.requests),
        "threshold": round(pred.threshold, 4),
        "intent_model": pred.model or None,
        "intent_model_description": description,
        "nearest_examples": [
            {"text": n.text, "intent": n.intent, "similarity": round(n.similarity, 4)} for n in pred.neighbours
        ],
        "kb": [
            {"id": p.article_id, "title": p.title, "score": round(p.score, 4), "matched_sentence": p.evidence}
            for p in passages
        ],
        "entities": [
            {"type": e.type, "text": e.text, "value": e.value, "start": e.start, "end": e.end}
            for e in analysis.entities
        ],
        "urgency": {"level": analysis.urgency.level, "reasons": list(analysis.urgency.reasons)},
        "redacted_text": analysis.redacted_text,
        "latency_ms": round(analysis.latency_ms, 2),
        "note": note,
    }


def run(args: argparse.Namespace) -> int:
    """Analyse the message and print the result (plain text or JSON)."""
    import sys
    from pathlib import Path

    from csassist.commands.common import open_workspace
    from csassist.core.errors import DataError, ModelMissingError
    from csassist.core.sanitize import terminal_safe_json
    from csassist.core.textnorm import normalize_text
    from csassist.core.understand.own_words import own_words
    from csassist.core.understand.stack import intent_distribution, load_understanding

    # argv with invalid UTF-8 arrives with surrogate escapes: normalise like every other entry point
    text = normalize_text(sys.stdin.read() if args.text == "-" else args.text)
    if not text or not text.strip():
        raise DataError("the message is empty: nothing to analyse")
    workspace = open_workspace()
    workspace.configure_threads()
    index_dir = Path(args.index).expanduser() if args.index else workspace.index_dir
    note = None
    encoder = None  # the messages' encoder, shared by the intent model, the detector and the KB search
    try:
        encoder = workspace.query_encoder()
        model = workspace.intent_model(encoder, index_dir=index_dir)
    except ModelMissingError as exc:
        model, note = None, f"no intent model: {exc}"
    description = model.describe() if model is not None else None
    if model is not None and model.report.get("fallback"):
        print(f"warning: {model.report['fallback']}", file=sys.stderr)
    retriever = None
    if not workspace.index_missing(index_dir):
        # The retrieval embedder (not necessarily the intent model's encoder) feeds the KB search and
        # the out-of-scope detector; it is one cached load when the intent head shares it.
        parts = load_understanding(index_dir, encoder or workspace.query_encoder(), intent_model=model)
        model, retriever = parts.intent_model, parts.retriever
        for extra in parts.notes:
            print(f"warning: {extra}", file=sys.stderr)
    analysis = workspace.analyzer(model).analyze(text)
    words = own_words(text)  # what the analysis read: no quoted reply, signature or sign-off
    passages = []
    if retriever is not None:
        top_k = workspace.settings.retrieval.top_k
        passages = retriever.search(words, top_k, intents=intent_distribution(analysis.intent))
    result = _analysis_dict(analysis, note, description, passages)
    result["own_words"] = words if words != text.strip() else None
    if args.json:
        print(terminal_safe_json(result))
        return 0
    _print_plain(result)
    return 0


def _print_plain(r: dict) -> None:
    """Human-readable output; customer text is printed as plain text, never interpreted as markup."""
    from csassist.core.sanitize import make_safe_for_terminal, safe_line

    if r.get("own_words"):  # the quoted reply / signature / sign-off were set aside
        print(f"read only: {safe_line(r['own_words'])}")
    if r["note"]:
        print(f"intent:    (unavailable) {safe_line(r['note'])}")
    elif not r["top"]:
        print("intent:    (nothing to classify)")
    else:
        verdict = "OUT OF SCOPE" if r["out_of_scope"] else r["intent"]
        print(f"intent:    {verdict}   (threshold {r['threshold']:.2f})")
        print(f"model:     {r['intent_model_description'] or r['intent_model']}")
        for s in r["top"]:
            print(f"           {s['probability']:6.1%}  {s['intent']}")
        if r["read_as"]:  # the typo-repaired text the models read (customer text: one safe line)
            print(f"read as:   {safe_line(r['read_as'])}")
        if r["requests"]:
            print("requests:  " + " | ".join(safe_line(x) for x in r["requests"]))
        if r["oos_reason"]:
            print(f"why:       {r['oos_reason']}")
        for n in r["nearest_examples"]:
            print(f"           {n['similarity']:.2f}  {n['text']!r} ({n['intent']})")
    for rank, hit in enumerate(r["kb"], start=1):
        label = "kb:" if rank == 1 else ""
        print(f"{label:<11}{rank}. {hit['title']} ({hit['id']}, {hit['score']:.2f})")
        if hit["matched_sentence"]:
            print(f"              matched: {hit['matched_sentence']!r}")
    if r["entities"]:
        print("entities:")
        for e in r["entities"]:
            print(f"           {e['type']:<14} {safe_line(e['value']):<28} ({safe_line(repr(e['text']))})")
    else:
        print("entities:  (none)")
    reasons = "; ".join(r["urgency"]["reasons"])
    print(f"urgency:   {r['urgency']['level']}" + (f"  ({reasons})" if reasons else ""))
    print(f"redacted:  {make_safe_for_terminal(r['redacted_text'])}")  # escapes shown, never run
    print(f"took:      {r['latency_ms']:.1f} ms")

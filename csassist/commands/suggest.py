"""`csassist suggest "message"`: one customer turn, headless: analysis, KB passages, suggested replies.

The same engine the terminal app uses (built by :class:`~csassist.core.workspace.Workspace`), so a script (or a test)
sees exactly what an agent would.  ``--conversation FILE.jsonl`` supplies the earlier turns (the
last conversation in the file, or ``--conversation-id``); without a message argument the last
customer message of that conversation is answered.  ``--json`` prints one object
``{"suggestions": [{"text", "source_ids", "backend", "latency_ms", "flags", "unsupported_sentences",
"grounding", "strategy", "fallbacks", ...}], ...}`` where ``grounding`` lists every sentence with its verdict
(supported / unsupported / conversational), the passage sentence that supports it and the claims checked,
and ``strategy`` says how the draft was made (``fallbacks``: what was tried first, and why it gave nothing).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``suggest`` and its options."""
    p = sub.add_parser("suggest", help="suggest replies to one customer message (headless)")
    p.add_argument("message", nargs="?", help="the customer's message (default: last customer turn of --conversation)")
    p.add_argument("--conversation", metavar="FILE.jsonl", help="earlier turns, one JSON message per line")
    p.add_argument("--conversation-id", metavar="ID", help="which conversation of the file (default: the last one)")
    p.add_argument("--customer", metavar="NAME", help="the customer's name (for the greeting)")
    p.add_argument("--backend", choices=("local", "server", "extractive"), help="reply generator backend")
    p.add_argument("--model", metavar="ID|DIR", help="generator model (default: bundled SmolLM2-135M-Instruct)")
    p.add_argument("-n", type=int, default=None, help="number of suggestions (default: [generation] num_suggestions)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (suggestions are reproducible)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest generated draft, in tokens")
    p.add_argument("--index", metavar="DIR", help="index directory (default: the one `csassist index` writes)")
    p.add_argument("--json", action="store_true", help='print {"suggestions": [...]} as one JSON object')


def _history(args: argparse.Namespace) -> tuple[list, str, str | None]:  # type: ignore[type-arg]
    """Earlier turns of the chosen conversation, its id and the customer's name (file problems -> errors)."""
    from pathlib import Path

    from csassist.core.errors import DataError
    from csassist.core.io.conversation_files import read_conversations

    if not args.conversation:
        return [], "cli", None
    messages, problems = read_conversations(Path(args.conversation).expanduser())
    if problems:
        raise DataError("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
    if not messages:
        raise DataError(f"{args.conversation}: no messages")
    cid = args.conversation_id or messages[-1].conversation_id
    turns = [m for m in messages if m.conversation_id == cid]
    if not turns:
        raise DataError(f"{args.conversation}: no conversation with id {cid!r}")
    name = next((m.customer for m in reversed(turns) if m.customer), None)
    return turns, cid, name


def grounding_json(grounding: Any) -> list[dict[str, Any]]:
    """Each sentence's verdict with its evidence and claims, as plain JSON (empty when unchecked)."""
    if grounding is None:
        return []
    return [
        {
            "text": s.text,
            "status": s.status,
            "source": s.source or None,
            "evidence": s.evidence or None,
            "claims": [{"kind": c.kind, "text": c.text, "supported": c.supported, "source": c.source or None}
                       for c in s.claims],
        }
        for s in grounding.sentences
    ]


def run(args: argparse.Namespace) -> int:
    """Load the assistant (degrading with warnings), run one turn, print the suggestions."""
    import dataclasses
    import sys

    from csassist.cli import EXIT_USAGE
    from csassist.commands.common import open_workspace, print_warnings
    from csassist.core.sanitize import terminal_safe_json
    from csassist.core.types import CancelToken, Message

    workspace = open_workspace()
    settings = workspace.settings
    gen = settings.generation
    gen = dataclasses.replace(
        gen,
        backend=args.backend or gen.backend,
        model=args.model if args.model is not None else gen.model,
        max_new_tokens=args.max_new_tokens or gen.max_new_tokens,
    )
    retrieval = settings.retrieval
    if args.index:
        retrieval = dataclasses.replace(retrieval, index_dir=args.index)
    workspace = workspace.replace(generation=gen, retrieval=retrieval)
    if args.n is not None and args.n < 1:
        print("csassist suggest: -n must be at least 1", file=sys.stderr)
        return EXIT_USAGE

    turns, cid, name = _history(args)
    if args.message:
        history = turns
        message = Message(cid, "customer", args.message, customer=args.customer or name)
    else:
        last = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].speaker == "customer"), None)
        if last is None:
            print("csassist suggest: give a message, or a --conversation with a customer turn", file=sys.stderr)
            return EXIT_USAGE
        history, message = turns[:last], turns[last]
        if args.customer:
            message = dataclasses.replace(message, customer=args.customer)

    assistant = workspace.assistant()
    print_warnings(assistant.warnings)
    analysis = assistant.analyze(message.text, history)
    passages = assistant.retrieve(message.text, history=history)
    done = [
        u
        for u in assistant.suggest(message, history, analysis, passages, CancelToken(), n=args.n, seed=args.seed)
        if u.done
    ]
    suggestions = [u.suggestion for u in done if u.suggestion is not None]
    errors = [f"slot {u.slot}: {u.error}" for u in done if u.error]

    if args.json:
        payload = {
            "suggestions": [
                {
                    "text": s.text,
                    "source_ids": list(s.source_ids),
                    "backend": s.backend,
                    "latency_ms": round(s.latency_ms, 1),
                    "first_token_ms": None if s.first_token_ms is None else round(s.first_token_ms, 1),
                    "model": s.model,
                    "strategy": s.strategy,
                    "fallbacks": list(s.fallbacks),
                    "flags": list(s.flags),
                    "unsupported_sentences": [u.text for u in s.grounding.unsupported] if s.grounding else [],
                    "grounding": grounding_json(s.grounding),
                }
                for s in suggestions
            ],
            "intent": analysis.intent.intent,
            "passages": [{"id": p.article_id, "score": round(p.score, 4)} for p in passages],
            "errors": errors,
            "warnings": [*workspace.warnings, *assistant.warnings],
            "engine": assistant.describe().as_dict(),
        }
        sys.stdout.write(terminal_safe_json(payload) + "\n")
        return 0

    from csassist.core.sanitize import make_safe_for_terminal, safe_line

    ids = list(dict.fromkeys(safe_line(p.article_id) for p in passages))
    print(f"intent: {analysis.intent.intent or '-'}   sources: {', '.join(ids) or '-'}")
    for i, s in enumerate(suggestions, start=1):
        timing = f"{s.latency_ms:.0f} ms" + (f", first token {s.first_token_ms:.0f} ms" if s.first_token_ms else "")
        print(
            f"\n[{i}] {s.backend}{' ' + s.model if s.model else ''}{' · ' + s.strategy if s.strategy else ''} ({timing}) "
            f"sources: {safe_line(', '.join(s.source_ids)) or '-'}"
        )
        print(make_safe_for_terminal(s.text))  # a draft quotes customer and KB text: escapes shown, not run
        for flag in s.flags:
            print(f"  ! {safe_line(flag)}")
        for sentence in s.grounding.unsupported if s.grounding else ():
            print(f"  ? not in the KB: {safe_line(sentence.text)}")
    for error in errors:
        print(f"\n{safe_line(error)}", file=sys.stderr)
    return 0

"""`csassist summarize --conversation FILE.jsonl`: a hand-over summary of one conversation, headless.

Goal (intent + the customer's request), facts (entities), what the agent said and promised, and
what is still open — each item traceable to its message (``[#n]`` in text, ``message_index`` and
``ts`` in ``--json``).  ``--id`` picks one conversation of a multi-conversation file (default: the
last one).  The intent model is used when an index is built; without one the summary is still made,
with a warning and no intent.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.types import Message
    from csassist.core.workspace import Workspace


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``summarize`` and its options."""
    p = sub.add_parser("summarize", help="hand-over summary of a conversation (goal, facts, promises, open items)")
    p.add_argument("--conversation", metavar="FILE.jsonl", required=True, help="conversation messages, one JSON per line")
    p.add_argument("--id", metavar="ID", help="which conversation of the file (default: the last one)")
    p.add_argument("--no-intent", action="store_true", help="skip the intent model (no model loading at all)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Read the conversation, detect the intent of the customer's request, print the summary."""
    import sys
    from pathlib import Path

    from csassist.commands.common import open_workspace, print_warnings
    from csassist.core.errors import DataError
    from csassist.core.io.conversation_files import read_conversations
    from csassist.core.reply.summary import summarize
    from csassist.core.sanitize import terminal_safe_json

    path = Path(args.conversation).expanduser()
    messages, problems = read_conversations(path)
    if problems:
        raise DataError("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
    if not messages:
        raise DataError(f"{args.conversation}: no messages")
    cid = args.id or messages[-1].conversation_id
    turns = [m for m in messages if m.conversation_id == cid]
    if not turns:
        known = ", ".join(list(dict.fromkeys(m.conversation_id for m in messages))[:10])
        raise DataError(f"{args.conversation}: no conversation with id {cid!r} (ids: {known})")

    workspace = open_workspace()
    settings = workspace.settings
    warnings: list[str] = []
    intent = None
    if not args.no_intent:
        intent, warnings = _intent(workspace, turns)
    summary = summarize(turns, intent=intent, order_patterns=settings.company.order_patterns,
                        tracking_patterns=settings.company.tracking_patterns)
    if args.json:
        payload = summary.to_json()
        payload["warnings"] = warnings
        sys.stdout.write(terminal_safe_json(payload) + "\n")
        return 0
    from csassist.core.sanitize import make_safe_for_terminal

    print_warnings([make_safe_for_terminal(w) for w in warnings])
    print(make_safe_for_terminal(summary.to_text()))
    return 0


def _intent(workspace: Workspace, turns: list[Message]) -> tuple[str | None, list[str]]:
    """The intent of the customer's first request, from the engine (degrades to ``None`` with warnings)."""
    assistant = workspace.assistant(generator=None)
    customer = [i for i, m in enumerate(turns) if m.speaker == "customer"]
    if not customer:
        return None, list(assistant.warnings)
    # the customer's opening turn (up to the first agent reply) states the goal
    first_agent = next((i for i, m in enumerate(turns) if m.speaker == "agent"), len(turns))
    opening = [turns[i] for i in customer if i < first_agent] or [turns[customer[0]]]
    analysis = assistant.analyze(opening[-1].text, opening[:-1])
    return analysis.intent.intent, list(assistant.warnings)

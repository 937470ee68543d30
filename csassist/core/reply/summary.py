"""Hand-over summary of a conversation: what a colleague (or a ticket note) needs, every fact traceable.

Why extractive: a summary that invents a promise is worse than none — the colleague would honour it.
So every item here is a span or a sentence of one message, tagged with that message's index (0-based,
in conversation order) and timestamp, and nothing is paraphrased:

* **goal** — the detected intent (when an intent model is available) and the customer sentence that
  asks for something (the first request or question; else their first sentence);
* **facts** — entities from every message (order and tracking ids, amounts, dates, contacts ...),
  the first mention of each value;
* **said** — the agent's informative sentences and questions (greetings and closings left out);
* **promised** — the agent's commitments: refunds, replacements, discounts, "we will ...", "I'll
  check and get back to you";
* **open** — what still waits for an answer: the customer's requests after the agent's last reply
  (all their sentences when none reads as a request), or the agent's last question when the
  customer has not answered it yet (thanks and greetings alone leave nothing open).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csassist.core.reply.claims import extract_claims
from csassist.core.reply.grounding import is_conversational, sentence_spans
from csassist.core.types import Message
from csassist.core.understand.entities import extract_entities

#: Phrases that turn a customer sentence into a request (what they want from us).
_REQUEST = re.compile(
    r"\b(?:i want|i'd like|i would like|i need|can you|could you|would you|can i|could i|please|help|"
    r"refund|replace|cancel|return|exchange|change|send|where is|when will|how do|how can|why)\b",
    re.IGNORECASE,
)
#: Agent commitments, including holding answers ("I'll check and get back to you").
_AGENT_COMMITS = re.compile(
    r"\b(?:i|we)(?:'ll|’ll| will| shall| am going to| are going to)\b|\b(?:promise|guarantee)\w{0,2}\b",
    re.IGNORECASE,
)
#: Longest sentence quoted in a summary item (characters); longer ones are cut with an ellipsis.
MAX_ITEM_CHARS = 300


@dataclass(frozen=True)
class SummaryItem:
    """One line of the summary and the message it comes from."""

    text: str
    message_index: int  # 0-based position of the message in the conversation
    ts: float
    speaker: str
    kind: str = ""  # entity type for facts ("order_id", "money" ...), "" otherwise


@dataclass(frozen=True)
class HandoverSummary:
    """The hand-over summary of one conversation (see the module docstring)."""

    conversation_id: str
    customer: str
    intent: str | None
    goal: SummaryItem | None
    facts: tuple[SummaryItem, ...] = ()
    said: tuple[SummaryItem, ...] = ()
    promised: tuple[SummaryItem, ...] = ()
    open: tuple[SummaryItem, ...] = ()
    messages: int = 0
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: every item with ``message_index``, ``ts`` and ``speaker`` for traceability."""

        def item(i: SummaryItem) -> dict[str, Any]:
            out: dict[str, Any] = {"text": i.text, "message_index": i.message_index, "ts": i.ts, "speaker": i.speaker}
            if i.kind:
                out["kind"] = i.kind
            return out

        return {
            "conversation_id": self.conversation_id,
            "customer": self.customer,
            "messages": self.messages,
            "intent": self.intent,
            "goal": item(self.goal) if self.goal else None,
            "facts": [item(i) for i in self.facts],
            "said": [item(i) for i in self.said],
            "promised": [item(i) for i in self.promised],
            "open": [item(i) for i in self.open],
            "warnings": list(self.warnings),
        }

    def to_text(self) -> str:
        """A short plain-text note (for a colleague or a helpdesk private note); ``[#n]`` = message n."""
        who = f"{self.customer} ({self.conversation_id})" if self.customer else self.conversation_id
        lines = [f"Hand-over: {who}, {self.messages} messages"]
        goal = f"Goal: {self.intent or 'unknown intent'}"
        if self.goal:
            goal += f' — "{self.goal.text}" [#{self.goal.message_index}]'
        lines.append(goal)
        sections = (("Facts", self.facts), ("Agent said", self.said), ("Agent promised", self.promised),
                    ("Open", self.open))
        for title, items in sections:
            if not items:
                lines.append(f"{title}: none")
                continue
            lines.append(f"{title}:")
            for i in items:
                label = f"{i.kind}: " if i.kind else ""
                lines.append(f"  - {label}{i.text} [#{i.message_index}]")
        return "\n".join(lines)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 1] + "…"


def _sentences(message: Message) -> list[str]:
    return [message.text[a:b] for a, b in sentence_spans(message.text)]


def _facts(messages: Sequence[Message], order_patterns: Sequence[str], tracking_patterns: Sequence[str]) -> list[SummaryItem]:
    """First mention of each entity value, in conversation order."""
    seen: set[tuple[str, str]] = set()
    facts: list[SummaryItem] = []
    for index, message in enumerate(messages):
        now = datetime.fromtimestamp(message.ts) if 0 < message.ts < 32_503_680_000 else None
        for ent in extract_entities(message.text, order_patterns=order_patterns,
                                    tracking_patterns=tracking_patterns, now=now):
            key = (ent.type, ent.value)
            if key in seen:
                continue
            seen.add(key)
            shown = ent.text if ent.text == ent.value else f"{ent.text} ({ent.value})"
            facts.append(SummaryItem(_cut(shown), index, message.ts, message.speaker, ent.type))
    return facts


def summarize(
    messages: Sequence[Message],
    *,
    intent: str | None = None,
    order_patterns: Sequence[str] = (),
    tracking_patterns: Sequence[str] = (),
) -> HandoverSummary:
    """Build the hand-over summary of one conversation's ``messages`` (oldest first).

    ``intent`` is the detected intent of the customer's request, when an intent model ran; the rest
    is taken from the messages themselves (pure: no model, no I/O).
    """
    if not messages:
        raise ValueError("a hand-over summary needs at least one message")
    cid = messages[0].conversation_id
    customer = next((m.customer for m in messages if m.customer), "") or ""
    goal: SummaryItem | None = None
    said: list[SummaryItem] = []
    promised: list[SummaryItem] = []
    for index, message in enumerate(messages):
        for sentence in _sentences(message):
            item = SummaryItem(_cut(sentence), index, message.ts, message.speaker)
            if message.speaker == "customer":
                if goal is None and (_REQUEST.search(sentence) or sentence.rstrip().endswith("?")):
                    goal = item
                continue
            commits = bool(_AGENT_COMMITS.search(sentence)) or any(c.kind == "promise" for c in extract_claims(sentence))
            if commits:
                promised.append(item)
            elif sentence.rstrip().endswith("?") or not is_conversational(sentence):
                said.append(item)
    if goal is None:
        first = next(((i, m) for i, m in enumerate(messages) if m.speaker == "customer" and m.text.strip()), None)
        if first is not None:
            sentences = _sentences(first[1])
            goal = SummaryItem(_cut(sentences[0] if sentences else first[1].text), first[0], first[1].ts, "customer")
    return HandoverSummary(
        conversation_id=cid,
        customer=customer,
        intent=intent,
        goal=goal,
        facts=tuple(_facts(messages, order_patterns, tracking_patterns)),
        said=tuple(said),
        promised=tuple(promised),
        open=tuple(_open_items(messages)),
        messages=len(messages),
    )


def _open_items(messages: Sequence[Message]) -> list[SummaryItem]:
    """What still waits: the customer's requests since the agent's last reply, or the agent's unanswered question."""
    last_agent = max((i for i, m in enumerate(messages) if m.speaker == "agent"), default=-1)
    pending = [(i, m) for i, m in enumerate(messages) if i > last_agent and m.speaker == "customer"]
    if pending:
        requests: list[SummaryItem] = []
        everything: list[SummaryItem] = []
        for index, message in pending:
            for sentence in _sentences(message):
                item = SummaryItem(_cut(sentence), index, message.ts, "customer")
                if not is_conversational(sentence):
                    everything.append(item)
                if _REQUEST.search(sentence) or sentence.rstrip().endswith("?"):
                    requests.append(item)
        return requests or everything
    if last_agent >= 0:
        agent = messages[last_agent]
        questions = [s for s in _sentences(agent) if s.rstrip().endswith("?")]
        return [SummaryItem(_cut(f"waiting for the customer: {q}"), last_agent, agent.ts, "agent") for q in questions]
    return []

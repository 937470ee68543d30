"""One generated suggestion slot: what the model is asked for, and how its streamed text becomes a draft.

Why a module of its own: a slot's plan (the chat the model sees, its token limit, how the text is
finished) and the streaming of that one draft are the same whichever strategy or fallback asked for
them; :mod:`csassist.core.reply.drafting` decides *which* strategy a slot tries and in what order
(core.reply.strategy), this module runs *one* try.  Keeping the two apart lets the fallback loop read
top to bottom and keeps each strategy's prompt in one place.

It also says what "the exact prompt" of a generator is (:func:`render_for`, :func:`token_counter`),
because the prompt stored with a suggestion must be the one the model saw, for the learning loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from collections.abc import Generator as Generator_
from dataclasses import dataclass

from csassist.core.reply.generation import Generator
from csassist.core.reply.grounding import ground
from csassist.core.reply.prompts import clean_draft, cut_at_stop, passage_ids_in, render_prompt
from csassist.core.reply.rewrite import (
    compose_selected,
    first_sentence,
    lead_body,
    opening_messages,
    place_opening,
    rewrite_messages,
)
from csassist.core.reply.strategy import unusable_reason
from csassist.core.types import Analysis, CancelToken, Message, Passage, Suggestion, SuggestionUpdate
from csassist.settings import Settings

#: New tokens for a "select" opening sentence: one short sentence, so it is also the fastest draft.
OPENING_TOKENS = 32


@dataclass(frozen=True)
class DraftTurn:
    """What every generated slot of one customer turn shares."""

    message: Message
    history: Sequence[Message]
    analysis: Analysis | None
    passages: Sequence[Passage]
    messages: list[dict[str, str]]  # the grounded ("free") prompt's chat messages
    prompt: str  # ... rendered
    lead: Suggestion  # slot 0, the extractive reply
    training_prompt: str  # logged with replies the model did not write whole

    @property
    def context(self) -> list[Message]:
        """The conversation a draft is grounded against (history plus the new message)."""
        return [*self.history, self.message]


@dataclass(frozen=True)
class SlotPlan:
    """One generated slot's job: the chat the model sees, its token limit, and how its text is finished."""

    strategy: str
    messages: list[dict[str, str]]
    max_new_tokens: int
    prompt: str  # stored with the suggestion: the learning loop's prompt for this reply (core.reply.strategy)
    source_ids: tuple[str, ...]
    finish: Callable[[str], str] | None = None  # cleaned model text -> suggestion text ("" = unusable)
    preview: Callable[[str], str] | None = None  # partial model text -> what the card shows meanwhile
    complete: Callable[[str], bool] | None = None  # stop generating once this is true
    empty_reason: str = ""  # why an empty ``finish`` result is unusable


def approx_token_count(text: str) -> int:
    """Rough token count (~4 characters a token) for generators that expose no tokenizer."""
    return max(1, len(text) // 4 + 1)


def token_counter(generator: Generator | None) -> Callable[[str], int]:
    """How to count prompt tokens for ``generator``: its own counter, else :func:`approx_token_count`.

    The prompt budget must be measured in the generator's tokens when it can say them, so that a long
    history is cut before the model's context is, not after.
    """
    counter = getattr(generator, "count_tokens", None)
    return counter if callable(counter) else approx_token_count


def render_for(generator: Generator | None, messages: list[dict[str, str]]) -> str:
    """The exact prompt: the chat template for a local model, the request messages for a server."""
    render = getattr(generator, "render", None)
    if callable(render):
        return str(render(messages))
    tokenizer = getattr(generator, "tokenizer", None)
    if tokenizer is not None:
        return render_prompt(messages, tokenizer)
    return json.dumps(messages, ensure_ascii=False, indent=1)


def plan_slot(strategy: str, turn: DraftTurn, settings: Settings, generator: Generator | None) -> SlotPlan:
    """What the model is asked for in one slot, and how its text becomes the suggestion.

    ``free``: the grounded prompt, the model writes the reply.  ``rewrite``: the model adapts the
    lead's KB sentences to the customer.  ``select``: the lead's KB sentences stay verbatim and the
    model writes only an opening sentence (kept only when grounded); generation stops as soon as
    that sentence is complete, and the card shows it in place while it is written.
    """
    cfg = settings.generation
    company = settings.company
    lead = turn.lead
    if strategy == "rewrite":
        messages = rewrite_messages(turn.message.text, [lead_body(lead.text)], company)
        return SlotPlan(strategy, messages, cfg.max_new_tokens, render_for(generator, messages), lead.source_ids)
    if strategy == "select":

        def finish(text: str) -> str:
            composed = compose_selected(lead.text, first_sentence(text), turn.passages, turn.context)
            return "" if composed == lead.text else composed  # no grounded opening: nothing new to offer

        return SlotPlan(
            strategy,
            opening_messages(turn.message.text, company),
            min(cfg.max_new_tokens, OPENING_TOKENS),
            turn.training_prompt,
            lead.source_ids,
            finish=finish,
            preview=lambda raw: place_opening(lead.text, first_sentence(raw) or raw.strip()),
            complete=lambda raw: bool(first_sentence(raw)) and len(raw.strip()) > len(first_sentence(raw)),
            empty_reason="no grounded opening sentence",
        )
    return SlotPlan(strategy, turn.messages, cfg.max_new_tokens, turn.prompt,
                    passage_ids_in(turn.messages, turn.passages))


def stream_slot(
    gen: Generator,
    plan: SlotPlan,
    slot: int,
    temperature: float,
    seed: int,
    cancel: CancelToken,
    turn: DraftTurn,
) -> Generator_[SuggestionUpdate, None, SuggestionUpdate | str]:
    """Run one draft, yielding partial updates; return the ``done`` update, or why the text is unusable.

    The returned update is not yielded here: the caller still checks it against earlier drafts.
    """
    start = time.perf_counter()
    first_ms: float | None = None
    raw = ""
    pieces = gen.stream(
        plan.messages, max_new_tokens=plan.max_new_tokens, temperature=temperature, seed=seed, cancel=cancel
    )
    try:
        for piece in pieces:
            if not piece:
                continue
            if first_ms is None:
                first_ms = (time.perf_counter() - start) * 1000
            raw += piece
            shown, stopped = cut_at_stop(raw)
            if stopped:
                raw = shown
                break
            if cancel.cancelled or (plan.complete is not None and plan.complete(shown)):
                break
            text = plan.preview(shown) if plan.preview is not None else shown
            yield SuggestionUpdate(slot=slot, text=text.strip(), backend=gen.backend)
    finally:
        close = getattr(pieces, "close", None)
        if callable(close):
            close()
    if cancel.cancelled:
        return SuggestionUpdate(slot=slot, text=raw.strip(), backend=gen.backend, done=True, error="cancelled")
    text = clean_draft(raw)
    if plan.finish is not None:
        text = plan.finish(text)
        if not text:
            return plan.empty_reason or "the model wrote nothing usable"
    else:
        reason = unusable_reason(text)
        if reason is not None:
            return reason
    grounding = ground(text, turn.passages, turn.context)
    suggestion = Suggestion(
        text=text,
        source_ids=plan.source_ids,
        backend=gen.backend,
        model=gen.model_id,
        latency_ms=(time.perf_counter() - start) * 1000,
        first_token_ms=first_ms,
        prompt=plan.prompt,
        flags=grounding.flags,
        grounding=grounding,
        strategy=plan.strategy,
    )
    return SuggestionUpdate(slot=slot, text=text, backend=gen.backend, done=True, suggestion=suggestion)

"""How a customer turn's suggestions are drafted: the extractive lead, then each generated slot's fallbacks.

Why a module of its own: :class:`csassist.core.pipeline.Assistant` orchestrates a turn (analyse,
retrieve, claim the conversation, build the prompt, stream); *drafting* is the one part of that with
real rules of its own — which strategy a slot tries next (the order is core.reply.strategy's), when a
draft is a near-duplicate, which temperature and seed a try gets, and the model-free last resorts
that make sure a slot is never empty.  Here those rules read top to bottom, apart from the wiring.
A single try (plan a slot, stream it) is :mod:`csassist.core.reply.slots`'s job.

The slot protocol itself (what the UI sees) is described in :mod:`csassist.core.pipeline`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence

from csassist.core.errors import BackendError
from csassist.core.reply.extractive import extractive_reply
from csassist.core.reply.generation import Generator
from csassist.core.reply.grounding import drop_unsupported, ground
from csassist.core.reply.slots import DraftTurn, plan_slot, stream_slot
from csassist.core.reply.strategy import MODEL_FREE, RETRY_UNUSABLE, fallback_chain, slot_strategy
from csassist.core.textmetrics import token_jaccard
from csassist.core.types import Analysis, CancelToken, Grounding, Message, Passage, Suggestion, SuggestionUpdate
from csassist.settings import CompanySettings, Settings

#: Two drafts whose word sets overlap more than this are near-duplicates.
DUPLICATE_JACCARD = 0.9


def lead_update(
    message: Message,
    history: Sequence[Message],
    analysis: Analysis | None,
    passages: Sequence[Passage],
    company: CompanySettings,
) -> SuggestionUpdate:
    """Slot 0, the lead suggestion (the caller adds the training prompt, so an accepted or edited
    extractive reply is a training pair for ``csassist finetune --from-log`` like any generated one).

    The lead is never a draft with an unsupported claim: the extractive reply is built from KB
    sentences so it is grounded by construction, and this is checked — any sentence that still fails
    the check is dropped before the agent sees it (generated drafts only ever take the later slots)."""
    start = time.perf_counter()
    text, ids = extractive_reply(message.text, passages, analysis, company, customer_name=message.customer)
    text, grounding = grounded_extract(text, passages, [*history, message])
    ms = (time.perf_counter() - start) * 1000
    suggestion = Suggestion(
        text=text,
        source_ids=ids,
        backend="extractive",
        model="",
        latency_ms=ms,
        first_token_ms=ms,
        flags=grounding.flags,
        grounding=grounding,
        strategy="extractive",
    )
    return SuggestionUpdate(slot=0, text=text, backend="extractive", done=True, suggestion=suggestion)


def draft_slots(
    turn: DraftTurn,
    cancel: CancelToken,
    total: int,
    seed: int,
    *,
    settings: Settings,
    generator: Generator,
    strategies: Sequence[str],
) -> Iterator[SuggestionUpdate]:
    """Slots 1..total-1: each tries its strategy's fallback chain until one gives a usable draft.

    See :mod:`csassist.core.reply.strategy` for the order.  Only cancellation and a backend
    failure leave a slot without a suggestion (the failure then ends every later slot too: the
    backend is down, and the agent must see that rather than a string of fallbacks).
    """
    gen = generator
    done_texts: list[str] = []
    offered_ids: set[str] = set(turn.lead.source_ids)
    attempt = 0
    failure: str | None = None
    for slot in range(1, total):
        if failure is not None:
            yield SuggestionUpdate(slot=slot, text="", backend=gen.backend, done=True, error=failure)
            continue
        tried: list[str] = []
        for name in fallback_chain(slot_strategy(strategies, slot)):
            if name in MODEL_FREE:
                found = model_free_update(name, turn, slot, done_texts, offered_ids, tried, settings.company)
                if isinstance(found, str):
                    tried.append(f"{name}: {found}")
                    continue
                assert found.suggestion is not None
                offered_ids.update(found.suggestion.source_ids)
                done_texts.append(found.text)
                yield found
                break
            outcome: SuggestionUpdate | str | None = None
            for retry in range(2 if not tried else 1):  # the configured strategy may get a second seed
                if cancel.cancelled:
                    yield SuggestionUpdate(slot=slot, text="", backend=gen.backend, done=True, error="cancelled")
                    return
                attempt += 1
                plan = plan_slot(name, turn, settings, gen)
                temperature = slot_temperature(settings.generation.temperature, slot, len(tried) + retry)
                try:
                    outcome = yield from stream_slot(gen, plan, slot, temperature, seed + attempt, cancel, turn)
                except BackendError as exc:
                    failure = str(exc)
                    yield SuggestionUpdate(slot=slot, text="", backend=gen.backend, done=True, error=failure)
                    break
                except Exception as exc:  # noqa: BLE001 - one broken draft must not end the turn
                    outcome = f"{type(exc).__name__}: {exc}"
                    break
                if isinstance(outcome, str):
                    if name in RETRY_UNUSABLE:
                        continue  # a cheap strategy: one more seed before falling back
                    break
                if outcome.suggestion is None:
                    break  # cancelled
                dup = near_duplicate(outcome.suggestion.text, done_texts)
                if dup is None:
                    break
                outcome = f"near-duplicate of suggestion {dup + 2}"  # on-screen numbering: the lead is 1
            if failure is not None:
                break
            if isinstance(outcome, SuggestionUpdate):
                if outcome.suggestion is None:  # cancelled mid-draft
                    yield outcome
                    return
                suggestion = dataclasses.replace(outcome.suggestion, fallbacks=tuple(tried))
                done_texts.append(suggestion.text)
                yield dataclasses.replace(outcome, suggestion=suggestion)
                break
            tried.append(f"{name}: {outcome}")


def slot_temperature(base: float, slot: int, retry: int) -> float:
    """Slot 1's first try is cooler (the safest draft); later slots and retries are hotter for variety."""
    return base * (0.5 if slot == 1 and retry == 0 else 1.0 + 0.25 * (slot - 2 + retry))


def near_duplicate(text: str, done_texts: Sequence[str]) -> int | None:
    """The index of the first earlier draft ``text`` nearly repeats (``None`` if none): the agent
    should get different replies to choose from, not the same one twice."""
    return next((i for i, t in enumerate(done_texts) if token_jaccard(text, t) > DUPLICATE_JACCARD), None)


def model_free_update(
    name: str,
    turn: DraftTurn,
    slot: int,
    done_texts: Sequence[str],
    offered_ids: set[str],
    tried: Sequence[str],
    company: CompanySettings,
) -> SuggestionUpdate | str:
    """A draft that needs no model (the last resorts of the fallback order), or why there is none.

    ``extractive-alt`` answers from the best retrieved article not yet offered (when it is relevant
    enough to answer from); ``extractive-copy`` repeats the lead, so the slot is never empty.
    """
    start = time.perf_counter()
    lead = turn.lead
    if name == "extractive-copy":
        text, ids, grounding = lead.text, lead.source_ids, lead.grounding
    else:
        others = [p for p in turn.passages if p.article_id not in offered_ids]
        if not others:
            return "no other retrieved article"
        text, ids = extractive_reply(turn.message.text, others, turn.analysis, company, customer_name=turn.message.customer)
        if not ids:
            return "no other article relevant enough"
        text, grounding = grounded_extract(text, turn.passages, turn.context)
        dup = near_duplicate(text, done_texts)
        if dup is not None:
            return f"near-duplicate of suggestion {dup + 2}"
    ms = (time.perf_counter() - start) * 1000
    suggestion = Suggestion(
        text=text,
        source_ids=ids,
        backend="extractive",
        latency_ms=ms,
        first_token_ms=ms,
        prompt=turn.training_prompt,
        flags=grounding.flags if grounding is not None else (),
        grounding=grounding,
        strategy=name,
        fallbacks=tuple(tried),
    )
    return SuggestionUpdate(slot=slot, text=text, backend="extractive", done=True, suggestion=suggestion)


def grounded_extract(text: str, passages: Sequence[Passage], context: Sequence[Message]) -> tuple[str, Grounding]:
    """An extractive reply and its grounding, with any sentence that fails the check dropped.

    Extractive text is KB sentences, so it is grounded by construction; this makes it certain.
    """
    grounding = ground(text, passages, context)
    if grounding.risky:
        text = drop_unsupported(text, grounding)
        grounding = ground(text, passages, context)
    return text, grounding

"""The engine's facade: one object the TUI, the CLI and the benchmarks all call.

Why one facade: the per-turn sequence (analyse -> retrieve -> suggest) and its degradation rules must
behave the same everywhere, and the UI must not know which pieces are missing: no index means no
passages, no intent model means no intent, no generator means extractive suggestions only.  Loading
the pieces from settings is :class:`csassist.core.workspace.Workspace`'s job, not this module's.

Suggestions stream as :class:`SuggestionUpdate` snapshots:

* slot 0 is the extractive reply, finished at once (it needs no model);
* slots 1..n-1 are generated drafts (slot 1 at a lower temperature, later slots hotter, each with
  its own seed), one ``[generation] strategy`` per slot (core.reply.strategy), streamed as
  ``done=False`` updates and finished with a ``done=True`` update whose ``suggestion`` holds the
  text, sources, timings, the training prompt, fact flags and the strategy that produced it;
* a draft that is unusable (empty, degenerate, no grounded opening) or a near-duplicate of an
  earlier one (after one retry with another seed) is replaced by the next strategy of the slot's
  fallback order, ending in model-free drafts, so a slot always gets a suggestion;
* a backend failure ends that slot and the later ones with ``error`` set; the extractive slot is
  never affected;
* a new call for the same conversation cancels the previous call's drafts (within one token), as
  does ``cancel.cancel()``; a cancelled slot ends with ``error="cancelled"``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Generator_
from dataclasses import dataclass
from typing import TYPE_CHECKING

from csassist.core.engine import EngineInfo
from csassist.core.errors import BackendError
from csassist.core.learn.textmetrics import token_jaccard
from csassist.core.reply.extractive import extractive_reply
from csassist.core.reply.generation import Generator
from csassist.core.reply.grounding import drop_unsupported, ground
from csassist.core.reply.prompts import (
    build_messages,
    clean_draft,
    cut_at_stop,
    passage_ids_in,
    render_prompt,
)
from csassist.core.reply.rewrite import (
    compose_selected,
    first_sentence,
    lead_body,
    opening_messages,
    place_opening,
    rewrite_messages,
)
from csassist.core.reply.strategy import (
    FALLBACK_ORDER,
    MODEL_FREE,
    RETRY_UNUSABLE,
    STRATEGIES,
    fallback_chain,
    parse_strategies,
    slot_strategy,
    training_strategy,
    unusable_reason,
)
from csassist.core.types import (
    Analysis,
    CancelToken,
    Grounding,
    IntentPrediction,
    Message,
    Passage,
    Suggestion,
    SuggestionUpdate,
    Urgency,
)
from csassist.core.understand.analysis import Analyzer
from csassist.core.understand.stack import intent_distribution
from csassist.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.knowledge.embedder import Encoder
    from csassist.core.knowledge.retrieval import Retriever
    from csassist.core.understand.intent import IntentModel

#: Turns whose intent prediction is kept for retrieve() (several open conversations interleave).
RECENT_PREDICTIONS = 32
#: Two drafts whose word sets overlap more than this are near-duplicates.
DUPLICATE_JACCARD = 0.9
#: New tokens for a "select" opening sentence: one short sentence, so it is also the fastest draft.
OPENING_TOKENS = 32


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


@dataclass(frozen=True)
class _Turn:
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


def approx_token_count(text: str) -> int:
    """Rough token count (~4 characters a token) for generators that expose no tokenizer."""
    return max(1, len(text) // 4 + 1)


def customer_turn_text(text: str, history: Sequence[Message], *, max_messages: int = 3) -> str:
    """The customer's whole unanswered turn: ``text`` plus the customer messages just before it.

    Customers split one request over several messages ("my order arrived broken" / "photos attached,
    that's £42"): the last message alone often carries no intent and retrieves the wrong article.
    Intent, entities and retrieval therefore look at the messages since the agent last wrote (at most
    ``max_messages``).  The newest message comes first so that the encoder's length limit cuts the
    oldest part, never the newest.  With no pending messages the result is ``text`` unchanged.
    """
    pending: list[str] = []
    for earlier in reversed(history):
        if earlier.speaker != "customer" or len(pending) >= max_messages - 1:
            break
        if earlier.text.strip():
            pending.append(earlier.text.strip())
    if not pending:
        return text
    return "\n".join([text.strip(), *pending])


def _empty_analysis(text: str) -> Analysis:
    """What is known about a message when no analyzer is available: nothing but its text."""
    return Analysis(
        intent=IntentPrediction(top=(), out_of_scope=False, threshold=0.0, model=""),
        entities=(),
        urgency=Urgency(),
        redacted_text=text,
    )


class Assistant:
    """Analyse a customer turn, find KB passages, and stream suggested replies.

    Built from settings by :meth:`csassist.core.workspace.Workspace.assistant` (which loads the
    models and records what is missing in ``warnings``); tests build it directly from fakes.
    Satisfies :class:`csassist.core.engine.Engine`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        encoder: Encoder | None = None,
        retriever: Retriever | None = None,
        intent_model: IntentModel | None = None,
        generator: Generator | None = None,
        analyzer: Analyzer | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.retriever = retriever
        self.intent_model = intent_model
        self.generator = generator
        self.warnings: list[str] = list(warnings)
        company = settings.company
        self.analyzer: Analyzer | None = analyzer if analyzer is not None else Analyzer(
            intent_model, order_patterns=company.order_patterns, tracking_patterns=company.tracking_patterns
        )
        self._inflight: dict[str, CancelToken] = {}
        self._lock = threading.Lock()
        # The last turns' predictions: retrieve() boosts with the prediction analyze() just made
        # instead of classifying (and letting the KB vote) a second time.
        self._recent: OrderedDict[str, IntentPrediction] = OrderedDict()

    @property
    def intent_labels(self) -> list[str]:
        """The labels of the intent model in use (empty without one)."""
        return list(getattr(self.intent_model, "labels", None) or [])

    def attach_generator(self, generator: Generator | None) -> None:
        """Use ``generator`` from the next suggestion on (the app loads it after the rest of the engine)."""
        self.generator = generator

    # ------------------------------------------------------------------ per turn
    def analyze(self, text: str, history: Sequence[Message] = ()) -> Analysis:
        """Intent, entities and urgency of the customer's turn ending in ``text`` (see :func:`customer_turn_text`).

        An empty analysis when no analyzer is available.
        """
        turn = customer_turn_text(text, history)
        if self.analyzer is None:
            return _empty_analysis(turn)
        try:
            analysis = self.analyzer.analyze(turn, history)
        except Exception as exc:  # noqa: BLE001 - analysis must never block a reply
            self._warn_once(f"analysis failed ({type(exc).__name__}: {exc})")
            return _empty_analysis(text)
        if self.intent_model is not None and getattr(self.analyzer, "intent_model", None) is self.intent_model:
            self._remember(turn, analysis.intent)
        return analysis

    def _remember(self, turn: str, prediction: IntentPrediction) -> None:
        """Keep ``prediction`` for ``turn`` (a few recent turns; several conversations interleave)."""
        with self._lock:
            self._recent[turn] = prediction
            self._recent.move_to_end(turn)
            while len(self._recent) > RECENT_PREDICTIONS:
                self._recent.popitem(last=False)

    def retrieve(self, text: str, k: int | None = None, history: Sequence[Message] = ()) -> list[Passage]:
        """The best KB articles for the customer's turn ending in ``text`` (empty without an index).

        The intent model's candidates boost the articles written for them (the embedding of the turn
        is memoised, so predicting here costs a matrix product, not a second encoding).
        """
        if self.retriever is None or not text.strip():
            return []
        turn = customer_turn_text(text, history)
        k = k or self.settings.retrieval.top_k
        intents = self._intent_distribution(turn)
        if intents:
            return list(self.retriever.search(turn, k, intents=intents))
        return list(self.retriever.search(turn, k))

    def _intent_distribution(self, turn: str) -> dict[str, float]:
        """``{intent: probability}`` of the turn's in-scope candidates ({} without a model or when OOS)."""
        if self.intent_model is None:
            return {}
        with self._lock:
            remembered = self._recent.get(turn)
        try:
            prediction = remembered if remembered is not None else self.intent_model.predict(turn)
        except Exception:  # noqa: BLE001 - boosting is optional; retrieval must still answer
            return {}
        return intent_distribution(prediction)  # the model's own candidates (before the KB's vote)

    def suggest(
        self,
        message: Message,
        history: Sequence[Message],
        analysis: Analysis | None,
        passages: Sequence[Passage],
        cancel: CancelToken,
        *,
        n: int | None = None,
        seed: int = 0,
    ) -> Iterator[SuggestionUpdate]:
        """Stream suggestions for ``message`` (see the module docstring for the slot protocol)."""
        total = max(1, n if n is not None else self.settings.generation.num_suggestions)
        self._claim(message.conversation_id, cancel)
        try:
            messages = self._prompt_messages(message, history, analysis, passages)
            prompt = self._render(messages)
            lead = self._extractive_update(message, history, analysis, passages)
            assert lead.suggestion is not None
            training_prompt = self._training_prompt(messages, message, lead.text)
            suggestion = dataclasses.replace(lead.suggestion, prompt=training_prompt)
            yield dataclasses.replace(lead, suggestion=suggestion)
            if self.generator is None or total <= 1 or cancel.cancelled:
                return
            turn = _Turn(message, history, analysis, passages, messages, prompt, suggestion, training_prompt)
            yield from self._generated_updates(turn, cancel, total, seed)
        finally:
            self._release(message.conversation_id, cancel)

    def describe(self) -> EngineInfo:
        """What is running, for the status bar and ``csassist models``."""
        gen = self.generator
        intent = self.intent_model
        # The intent model says which one it is (index head or store version): never a surprise.
        namer = getattr(intent, "short_name", None)
        intent_id = namer() if callable(namer) else (getattr(intent, "model_id", None) if intent else None)
        return EngineInfo(
            backend=gen.backend if gen is not None else "extractive",
            device=str(getattr(gen, "device", "-")) if gen is not None else "-",
            generator=gen.model_id if gen is not None else "none (extractive only)",
            embedder=str(getattr(self.encoder, "model_id", "none")) if self.encoder is not None else "none",
            intent_model=str(intent_id or type(intent).__name__) if intent is not None else "none",
            index="loaded" if self.retriever is not None else "none",
        )

    # ------------------------------------------------------------------ internals
    def _warn_once(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _claim(self, conversation_id: str, cancel: CancelToken) -> None:
        """Register ``cancel`` as the in-flight turn of the conversation, cancelling the previous one."""
        with self._lock:
            previous = self._inflight.get(conversation_id)
            if previous is not None and previous is not cancel:
                previous.cancel()
            self._inflight[conversation_id] = cancel

    def _release(self, conversation_id: str, cancel: CancelToken) -> None:
        with self._lock:
            if self._inflight.get(conversation_id) is cancel:
                del self._inflight[conversation_id]

    def _prompt_messages(
        self, message: Message, history: Sequence[Message], analysis: Analysis | None, passages: Sequence[Passage]
    ) -> list[dict[str, str]]:
        """The chat messages for this turn, within the configured token budget."""
        cfg = self.settings.generation
        return build_messages(
            message.text,
            history,
            passages,
            analysis,
            self.settings.company,
            token_budget=cfg.prompt_token_budget,
            count_tokens=self._count_tokens(),
            max_turns=cfg.history_turns,
        )

    def _extractive_update(
        self,
        message: Message,
        history: Sequence[Message],
        analysis: Analysis | None,
        passages: Sequence[Passage],
    ) -> SuggestionUpdate:
        """Slot 0, the lead suggestion (the caller adds the training prompt, so an accepted or edited
        extractive reply is a training pair for ``csassist finetune --from-log`` like any generated one).

        The lead is never a draft with an unsupported claim: the extractive reply is built from KB
        sentences so it is grounded by construction, and this is checked — any sentence that still fails
        the check is dropped before the agent sees it (generated drafts only ever take the later slots)."""
        start = time.perf_counter()
        text, ids = extractive_reply(
            message.text, passages, analysis, self.settings.company, customer_name=message.customer
        )
        text, grounding = _grounded_extract(text, passages, [*history, message])
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

    def _count_tokens(self) -> Callable[[str], int]:
        counter = getattr(self.generator, "count_tokens", None)
        return counter if callable(counter) else approx_token_count

    def _render(self, messages: list[dict[str, str]]) -> str:
        """The exact prompt: the chat template for a local model, the request messages for a server."""
        render = getattr(self.generator, "render", None)
        if callable(render):
            return str(render(messages))
        tokenizer = getattr(self.generator, "tokenizer", None)
        if tokenizer is not None:
            return render_prompt(messages, tokenizer)
        return json.dumps(messages, ensure_ascii=False, indent=1)

    def _generated_updates(self, turn: _Turn, cancel: CancelToken, total: int, seed: int) -> Iterator[SuggestionUpdate]:
        """Slots 1..total-1: each tries its strategy's fallback chain until one gives a usable draft.

        See :mod:`csassist.core.reply.strategy` for the order.  Only cancellation and a backend
        failure leave a slot without a suggestion (the failure then ends every later slot too: the
        backend is down, and the agent must see that rather than a string of fallbacks).
        """
        gen = self.generator
        assert gen is not None
        strategies = self._strategies()
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
                    found = self._model_free_update(name, turn, slot, done_texts, offered_ids, tried)
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
                    plan = self._slot_plan(name, turn)
                    try:
                        outcome = yield from self._stream_slot(
                            gen, plan, slot, self._temperature(slot, len(tried) + retry), seed + attempt, cancel, turn
                        )
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
                    text = outcome.suggestion.text
                    dup = next((i for i, t in enumerate(done_texts) if token_jaccard(text, t) > DUPLICATE_JACCARD), None)
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

    def _temperature(self, slot: int, retry: int) -> float:
        """Slot 1's first try is cooler (the safest draft); later slots and retries are hotter for variety."""
        base = self.settings.generation.temperature
        return base * (0.5 if slot == 1 and retry == 0 else 1.0 + 0.25 * (slot - 2 + retry))

    def _strategies(self) -> list[str]:
        """How each generated slot uses the model (``[generation] strategy``, one name per slot, the last repeats)."""
        names, unknown = parse_strategies(self.settings.generation.strategy)
        if unknown:
            self._warn_once(
                f"unknown generation strategy {', '.join(unknown)} (known: {', '.join(STRATEGIES)}); "
                f"using {FALLBACK_ORDER[0]}"
            )
        return names

    def _training_prompt(self, turn_messages: list[dict[str, str]], message: Message, lead_text: str) -> str:
        """The prompt logged with replies the model did not write whole (see core.reply.strategy)."""
        if training_strategy(self._strategies()) == "free":
            return self._render(turn_messages)
        return self._render(rewrite_messages(message.text, [lead_body(lead_text)], self.settings.company))

    def _slot_plan(self, strategy: str, turn: _Turn) -> SlotPlan:
        """What the model is asked for in one slot, and how its text becomes the suggestion.

        ``free``: the grounded prompt, the model writes the reply.  ``rewrite``: the model adapts the
        lead's KB sentences to the customer.  ``select``: the lead's KB sentences stay verbatim and the
        model writes only an opening sentence (kept only when grounded); generation stops as soon as
        that sentence is complete, and the card shows it in place while it is written.
        """
        cfg = self.settings.generation
        company = self.settings.company
        lead = turn.lead
        if strategy == "rewrite":
            messages = rewrite_messages(turn.message.text, [lead_body(lead.text)], company)
            return SlotPlan(strategy, messages, cfg.max_new_tokens, self._render(messages), lead.source_ids)
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

    def _stream_slot(
        self,
        gen: Generator,
        plan: SlotPlan,
        slot: int,
        temperature: float,
        seed: int,
        cancel: CancelToken,
        turn: _Turn,
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

    def _model_free_update(
        self,
        name: str,
        turn: _Turn,
        slot: int,
        done_texts: Sequence[str],
        offered_ids: set[str],
        tried: Sequence[str],
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
            text, ids = extractive_reply(
                turn.message.text, others, turn.analysis, self.settings.company, customer_name=turn.message.customer
            )
            if not ids:
                return "no other article relevant enough"
            text, grounding = _grounded_extract(text, turn.passages, turn.context)
            dup = next((i for i, t in enumerate(done_texts) if token_jaccard(text, t) > DUPLICATE_JACCARD), None)
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


def _grounded_extract(text: str, passages: Sequence[Passage], context: Sequence[Message]) -> tuple[str, Grounding]:
    """An extractive reply and its grounding, with any sentence that fails the check dropped.

    Extractive text is KB sentences, so it is grounded by construction; this makes it certain.
    """
    grounding = ground(text, passages, context)
    if grounding.risky:
        text = drop_unsupported(text, grounding)
        grounding = ground(text, passages, context)
    return text, grounding

"""The engine's facade: one object the TUI, the CLI and the benchmarks all call.

Why one facade: the per-turn sequence (analyse -> retrieve -> suggest) and its degradation rules must
behave the same everywhere, and the UI must not know which pieces are missing: no index means no
passages, no intent model means no intent, no generator means extractive suggestions only.  Loading
the pieces from settings is :class:`csassist.core.workspace.Workspace`'s job, not this module's, and
drafting the suggestions (the extractive lead, each slot's strategy and fallbacks, streaming one
draft) is :mod:`csassist.core.reply.drafting`'s and :mod:`csassist.core.reply.slots`'s: this module
orchestrates a turn and owns the rules that are about the turn, not about a draft.

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
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from csassist.core.engine import EngineInfo
from csassist.core.reply.drafting import draft_slots, lead_update
from csassist.core.reply.generation import Generator
from csassist.core.reply.prompts import build_messages
from csassist.core.reply.rewrite import lead_body, rewrite_messages
from csassist.core.reply.slots import DraftTurn, render_for, token_counter
from csassist.core.reply.strategy import FALLBACK_ORDER, STRATEGIES, parse_strategies, training_strategy
from csassist.core.types import (
    Analysis,
    CancelToken,
    IntentPrediction,
    Message,
    Passage,
    SuggestionUpdate,
    Urgency,
)
from csassist.core.understand.analysis import Analyzer, MessageAnalyzer
from csassist.core.understand.own_words import own_words
from csassist.core.understand.stack import intent_distribution
from csassist.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.knowledge.embedder import Encoder
    from csassist.core.knowledge.retrieval import PassageSearch
    from csassist.core.understand.intent import IntentModel

#: Turns whose intent prediction is kept for retrieve() (several open conversations interleave).
RECENT_PREDICTIONS = 32


def customer_turn_text(text: str, history: Sequence[Message], *, max_messages: int = 3) -> str:
    """The customer's whole unanswered turn: ``text`` plus the customer messages just before it.

    Customers split one request over several messages ("my order arrived broken" / "photos attached,
    that's £42"): the last message alone often carries no intent and retrieves the wrong article.
    Intent, entities and retrieval therefore look at the messages since the agent last wrote (at most
    ``max_messages``).  The newest message comes first so that the encoder's length limit cuts the
    oldest part, never the newest.  Each message counts with its own words only
    (:func:`~csassist.core.understand.own_words.own_words`: no quoted earlier reply, signature or
    sign-off), so that an e-mail's quoted thread never outweighs what the customer wrote.
    """
    pending: list[str] = []
    for earlier in reversed(history):
        if earlier.speaker != "customer" or len(pending) >= max_messages - 1:
            break
        if earlier.text.strip():
            pending.append(own_words(earlier.text))
    if not pending:
        return own_words(text) if text.strip() else text
    return "\n".join([own_words(text), *pending])


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
    models and records what is missing in ``warnings``); tests build it directly from fakes, which
    is why ``retriever`` and ``analyzer`` are typed by the one call made on each
    (:class:`~csassist.core.knowledge.retrieval.PassageSearch`,
    :class:`~csassist.core.understand.analysis.MessageAnalyzer`), not by the real classes.
    Satisfies :class:`csassist.core.engine.Engine`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        encoder: Encoder | None = None,
        retriever: PassageSearch | None = None,
        intent_model: IntentModel | None = None,
        generator: Generator | None = None,
        analyzer: MessageAnalyzer | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.retriever = retriever
        self.intent_model = intent_model
        self.generator = generator
        self.warnings: list[str] = list(warnings)
        company = settings.company
        self.analyzer: MessageAnalyzer | None = analyzer if analyzer is not None else Analyzer(
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
            lead = lead_update(message, history, analysis, passages, self.settings.company)
            assert lead.suggestion is not None
            training_prompt = self._training_prompt(messages, message, lead.text)
            suggestion = dataclasses.replace(lead.suggestion, prompt=training_prompt)
            yield dataclasses.replace(lead, suggestion=suggestion)
            generator = self.generator
            if generator is None or total <= 1 or cancel.cancelled:
                return
            turn = DraftTurn(message, history, analysis, passages, messages, prompt, suggestion, training_prompt)
            yield from draft_slots(
                turn, cancel, total, seed, settings=self.settings, generator=generator, strategies=self._strategies()
            )
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
            count_tokens=token_counter(self.generator),
            max_turns=cfg.history_turns,
        )

    def _render(self, messages: list[dict[str, str]]) -> str:
        """The exact prompt the current generator sees for ``messages`` (see :func:`render_for`)."""
        return render_for(self.generator, messages)

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

"""One call that understands a customer message: intent, entities, urgency, redacted text.

The TUI, ``csassist analyze`` and the pipeline all need the same four answers for every incoming
message; bundling them keeps the configuration (company id patterns, the intent model) in one object
built once, and times the whole thing so the UI can show what understanding costs.

Without an intent model (no index yet) the analysis still runs: the intent prediction then has no
candidates, ``out_of_scope=False`` (nothing was judged out of scope; the model is simply missing) and
``model=""``, so callers can tell "no model" from "out of scope" by ``prediction.model``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from csassist.core.textnorm import normalize_text
from csassist.core.types import Analysis, IntentPrediction, Message
from csassist.core.understand.entities import extract_entities
from csassist.core.understand.intent import IntentModel
from csassist.core.understand.own_words import own_words
from csassist.core.understand.redact import redact
from csassist.core.understand.urgency import assess_urgency

#: What "no intent model" looks like (see the module docstring).
NO_MODEL_PREDICTION = IntentPrediction(top=(), out_of_scope=False, threshold=0.0, model="")


class MessageAnalyzer(Protocol):
    """What the turn pipeline needs of an analyzer: one ``analyze(text, history)`` call, nothing else.

    Why a protocol: :class:`csassist.core.pipeline.Assistant` calls only this, so its tests drive
    it with a scripted fake instead of a loaded intent model, and mypy checks that fake against this
    signature (``text`` and ``history`` are passed positionally, so their names are free).
    :class:`Analyzer` is the real one.
    """

    def analyze(self, text: str, history: Sequence[Message], /) -> Analysis:
        """Intent, entities, urgency and the redacted text of ``text`` (the customer's whole turn)."""
        ...


class Analyzer:
    """Understands customer messages with one configured intent model and company id patterns."""

    def __init__(
        self,
        intent_model: IntentModel | None,
        *,
        order_patterns: Sequence[str] = (),
        tracking_patterns: Sequence[str] = (),
    ) -> None:
        self.intent_model = intent_model
        self.order_patterns = tuple(order_patterns)
        self.tracking_patterns = tuple(tracking_patterns)

    def analyze(self, text: str, history: Sequence[Message] = (), *, now: datetime | None = None) -> Analysis:
        """Intent (top 3 + OOS), entities, urgency with reasons, and the display-redacted text.

        Intent, entities and urgency read the customer's own words (:func:`own_words`): a quoted
        earlier reply or an e-mail signature otherwise decides them.
        """
        started = time.perf_counter()
        text = normalize_text(text or "")  # callers outside the Message path (CLI, bench) too
        words = own_words(text)  # not the quoted earlier reply, signature or sign-off
        intent = self.intent_model.predict(words) if self.intent_model is not None else NO_MODEL_PREDICTION
        entities = extract_entities(
            words, order_patterns=self.order_patterns, tracking_patterns=self.tracking_patterns, now=now
        )
        urgency = assess_urgency(words, history)
        redacted = redact(text).text  # the whole message: what the agent sees, redacted
        return Analysis(
            intent=intent,
            entities=tuple(entities),
            urgency=urgency,
            redacted_text=redacted,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

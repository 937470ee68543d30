"""A deterministic stand-in for ``csassist.core.pipeline.Assistant`` (UI logic tests and snapshots).

It satisfies :class:`csassist.core.engine.Engine` like the real one (``tests/test_engine_contract.py``
runs the same contract against both): ``analyze``, ``retrieve``, ``suggest`` (slot 0 instant, the
others streamed word by word, honouring the CancelToken), ``describe``, ``warnings``,
``intent_labels`` and ``attach_generator``.  Answers are keyed
on words in the message so tests can reason about them; ``delay`` slows the streamed slots down so
cancellation can be observed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from csassist.core.engine import EngineInfo
from csassist.core.reply.generation import Generator
from csassist.core.types import (
    Analysis,
    CancelToken,
    Entity,
    IntentPrediction,
    IntentScore,
    Message,
    Passage,
    Suggestion,
    SuggestionUpdate,
    Urgency,
)

ARTICLES = {
    "refund": ("damaged-item-refund", "Refunds for damaged items",
               "If an item arrives damaged, send us a photo and we refund it in full within 5 days."),
    "parcel": ("missing-parcel", "My parcel has not arrived",
               "Parcels usually arrive in 3-5 working days. If yours is late, we open an investigation."),
    "password": ("reset-password", "Resetting your password",
                 "Use 'Forgot password' on the sign-in page; the link is valid for 30 minutes."),
}
INTENTS = ["refund_request", "missing_parcel", "reset_password", "cancel_order"]


class FakeAssistant:
    """Keyword-driven analysis and retrieval; canned streamed replies."""

    def __init__(self, delay: float = 0.0, n: int = 3) -> None:
        self.delay = delay
        self.n = n
        self.warnings: tuple[str, ...] = ()
        self.suggest_calls = 0
        self.cancelled_runs = 0
        self.intent_labels = list(INTENTS)
        self.generator: Generator | None = None
        self._lock = threading.Lock()

    def _topic(self, text: str) -> str:
        low = text.lower()
        for key in ARTICLES:
            if key in low:
                return key
        return "parcel"

    def analyze(self, text: str, history: Sequence[Message] = ()) -> Analysis:
        """Intent from keywords; an order number entity for 5-digit numbers; urgency from 'angry'."""
        topic = self._topic(text)
        first = {"refund": "refund_request", "parcel": "missing_parcel", "password": "reset_password"}[topic]
        others = [i for i in INTENTS if i != first]
        top = (IntentScore(first, 0.82), IntentScore(others[0], 0.11), IntentScore(others[1], 0.04))
        entities = tuple(
            Entity("order_id", word, text.find(word), text.find(word) + len(word), word)
            for word in text.split() if word.isdigit() and len(word) == 5
        )
        urgent = "angry" in text.lower() or "lawyer" in text.lower()
        urgency = Urgency("urgent", ("angry tone",)) if urgent else Urgency()
        prediction = IntentPrediction(top=top, out_of_scope=False, threshold=0.3, model="fake-head")
        return Analysis(prediction, entities, urgency, redacted_text=text, latency_ms=1.0)

    def retrieve(self, text: str, k: int | None = None, history: Sequence[Message] = ()) -> list[Passage]:
        """The matching article first, the others after it with lower scores; nothing for an empty query."""
        k = 5 if k is None else k
        if not text.strip():
            return []
        topic = self._topic(text)
        order = [topic] + [t for t in ARTICLES if t != topic]
        out = []
        for rank, key in enumerate(order[:k]):
            aid, title, body = ARTICLES[key]
            out.append(Passage(f"{aid}#0", aid, title, body, f"kb/{aid}.md", round(0.9 - 0.2 * rank, 2)))
        return out

    def suggest(self, message: Message, history: Sequence[Message], analysis: Analysis | None,
                passages: Sequence[Passage], cancel: CancelToken, *, n: int | None = None,
                seed: int = 0) -> Iterator[SuggestionUpdate]:
        """Slot 0 at once (extractive), then slots 1.. streamed word by word."""
        with self._lock:
            self.suggest_calls += 1
        count = n or self.n
        best = passages[0] if passages else None
        ids = (best.article_id,) if best else ()
        base = best.text if best else "Thanks for your message, I will check and get back to you."
        text0 = f"Hello, thanks for reaching out. {base}"
        yield SuggestionUpdate(0, text0, "extractive", done=True,
                               suggestion=Suggestion(text0, ids, "extractive", "", 1.0, None, "prompt-0"))
        try:
            for slot in range(1, count):
                words = f"Hi! Draft {slot} (seed {seed}): {base}".split()
                start = time.perf_counter()
                for i in range(1, len(words) + 1):
                    if cancel.cancelled:
                        self._count_cancel()
                        return
                    if self.delay:
                        time.sleep(self.delay)
                    yield SuggestionUpdate(slot, " ".join(words[:i]), "local")
                text = " ".join(words)
                ms = (time.perf_counter() - start) * 1000
                yield SuggestionUpdate(slot, text, "local", done=True,
                                       suggestion=Suggestion(text, ids, "local", "fake-lm", ms, 1.0, f"prompt-{slot}"))
        except GeneratorExit:  # the consumer stopped early: that is a cancellation too
            self._count_cancel()
            raise

    def _count_cancel(self) -> None:
        with self._lock:
            self.cancelled_runs += 1

    def describe(self) -> EngineInfo:
        """What the status bar shows (no intent model or index entry: the snapshots show none)."""
        return EngineInfo(backend="fake", device="cpu", generator="fake-lm", embedder="fake-encoder",
                          intent_model="", index="")

    def attach_generator(self, generator: Generator | None) -> None:
        """The fake streams its own drafts; a real generator attached later is only remembered."""
        self.generator = generator


class FakeOutbox:
    """Records sends in memory (for tests that do not need the file)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, object]]] = []

    def send(self, conversation_id: str, text: str, meta: dict[str, object] | None = None) -> None:
        """Remember the reply."""
        self.sent.append((conversation_id, text, dict(meta or {})))

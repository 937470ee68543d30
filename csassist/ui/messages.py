"""App-level Textual messages: how worker threads and message sources talk to the UI thread.

Workers never touch widgets; they post one of these small dataclass messages and the app applies
it on the UI thread.  Streamed suggestion text is high-rate, so :class:`SuggestionStreamed` lets a
newer snapshot of the same slot replace a pending older one (``can_replace``), as in toolong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.message import Message as TextualMessage

from csassist.core.types import Analysis, Message, Passage, SuggestionUpdate
from csassist.ui.turn import Reply

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.engine import Engine
    from csassist.core.reply.generation import Generator


@dataclass
class CustomerMessageArrived(TextualMessage):
    """A message from any source (demo, file, stdin, HTTP) reached the app."""

    message: Message
    arrived: float  # time.perf_counter() when it reached the app (for arrival -> shown latency)


class ArrivalsPending(TextualMessage):
    """Messages wait in the app's :class:`~csassist.ui.arrivals.ArrivalQueue` (one wake-up per batch)."""


@dataclass
class AnalysisReady(TextualMessage):
    """Intent, entities, urgency and KB passages for one customer turn (posted before generation)."""

    conversation_id: str
    turn: int
    analysis: Analysis
    passages: list[Passage]
    analyse_ms: float
    retrieve_ms: float
    arrived: float


@dataclass
class AnalysisFailed(TextualMessage):
    """The engine raised on one customer turn: shown to the agent; the next message is analysed as usual."""

    conversation_id: str
    turn: int
    error: str


@dataclass
class SuggestionStreamed(TextualMessage):
    """A snapshot of one suggestion slot; a newer one for the same slot replaces a pending one."""

    conversation_id: str
    turn: int
    generation: int  # which generation run produced it (stale runs are ignored)
    update: SuggestionUpdate
    first_token_ms: float | None = None

    def can_replace(self, message: TextualMessage) -> bool:
        """Replace an older, unfinished snapshot of the same slot of the same run."""
        return (
            isinstance(message, SuggestionStreamed)
            and message.conversation_id == self.conversation_id
            and message.turn == self.turn
            and message.generation == self.generation
            and message.update.slot == self.update.slot
            and not message.update.done
        )


@dataclass
class GenerationFinished(TextualMessage):
    """A generation run ended (finished, cancelled or failed)."""

    conversation_id: str
    turn: int
    generation: int
    error: str | None = None


@dataclass
class AssistantReady(TextualMessage):
    """The engine finished loading (in a worker); ``assistant`` is None when loading failed."""

    assistant: Engine | None
    error: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class EngineNotice(TextualMessage):
    """Something the agent should see as a notification (index build progress, failures)."""

    text: str
    severity: str = "information"
    timeout: float = 5.0


@dataclass
class SendFailed(TextualMessage):
    """The outbox could not store a reply: it goes back into the composer, nothing is lost."""

    conversation_id: str
    reply: Reply
    error: str


@dataclass
class GeneratorReady(TextualMessage):
    """The reply model finished loading after the rest of the engine (``None``: extractive only)."""

    assistant: Engine
    generator: Generator | None
    error: str | None = None

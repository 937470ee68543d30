"""The engine's vocabulary: small frozen dataclasses passed between core, CLI, UI and benchmarks.

Frozen so a value handed to a worker thread can never be mutated under the UI's feet, and plain
dataclasses (not pydantic) because they cost nothing to build on the hot path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from csassist.core.textnorm import normalize_text

Speaker = Literal["customer", "agent"]
UrgencyLevel = Literal["normal", "elevated", "urgent"]
Outcome = Literal["accepted", "edited", "rejected", "ignored"]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation as it arrived (customer) or was sent (agent)."""

    conversation_id: str
    speaker: Speaker
    text: str
    ts: float = 0.0  # seconds since the epoch
    customer: str | None = None  # display name when known
    delay: float = 0.0  # demo replay: seconds to wait before this message

    def __post_init__(self) -> None:
        """Put the texts in csassist's normal form, whoever built the message (see core.textnorm).

        Every source goes through here, so no engine call (tokenizer, regexes, SQLite) ever sees a
        lone surrogate or a stray ``\r`` - one bad message cannot switch analysis off.
        """
        object.__setattr__(self, "text", normalize_text(self.text))
        if self.customer is not None:
            object.__setattr__(self, "customer", normalize_text(self.customer))


@dataclass(frozen=True)
class KBProblem:
    """Something wrong in a knowledge-base file: reported with file and line, never fatal."""

    source: str  # path relative to the KB root when possible
    line: int  # 1-based; 0 when the problem concerns the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Article:
    """One KB article (a Markdown file or one FAQ row) before chunking."""

    article_id: str
    title: str
    body: str
    source: str
    intents: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()  # question variants that this article answers


@dataclass(frozen=True)
class Chunk:
    """The unit that is embedded and retrieved; long article bodies become several chunks."""

    chunk_id: str  # f"{article_id}#{n}"
    article_id: str
    title: str
    text: str  # the passage shown to the agent and given to the generator
    source: str
    intents: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    content_hash: str = ""  # sha256 of what was embedded (title + questions + text)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its similarity score (cosine, higher is better)."""

    chunk_id: str
    article_id: str
    title: str
    text: str
    source: str
    score: float
    intents: tuple[str, ...] = ()
    evidence: str = ""  # the sentence of ``text`` closest to the query ("" when not computed)


@dataclass(frozen=True)
class IntentExample:
    """One labelled utterance from kb/intents.csv or a training file (label ``oos`` = out of scope)."""

    text: str
    intent: str
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class IntentScore:
    """One candidate intent with its probability."""

    intent: str
    probability: float


@dataclass(frozen=True)
class Neighbour:
    """A training example close to the message: why the model believes what it believes."""

    text: str
    intent: str
    similarity: float  # cosine similarity of the two embeddings


@dataclass(frozen=True)
class IntentPrediction:
    """Top intents (best first) plus the out-of-scope verdict."""

    top: tuple[IntentScore, ...]
    out_of_scope: bool
    threshold: float
    model: str = ""  # which intent model produced it (head id or fine-tuned version)
    oos_score: float | None = None  # out-of-scope detector's probability (None: softmax cut-off only)
    reason: str = ""  # why the verdict, in words an agent can check
    neighbours: tuple[Neighbour, ...] = ()  # nearest training examples (best first)
    # The model's own candidates when the KB's vote reordered ``top`` (empty otherwise).  Retrieval boosts
    # with these: boosting with a ranking the top articles already voted on would only echo them.
    own_top: tuple[IntentScore, ...] = ()
    #: The message as the models read it, when typo repair changed it ("" otherwise).
    read_as: str = ""
    #: The requests of a message holding two or more, lead request first (their ranking leans to it).
    requests: tuple[str, ...] = ()

    @property
    def intent(self) -> str | None:
        """The best in-scope intent, or ``None`` when out of scope / nothing predicted."""
        if self.out_of_scope or not self.top:
            return None
        return self.top[0].intent

    @property
    def confidence(self) -> float:
        """Probability of the best candidate (0.0 when there is none)."""
        return self.top[0].probability if self.top else 0.0


@dataclass(frozen=True)
class Entity:
    """A span of the message with its type and normalised value."""

    type: str  # order_id, tracking_code, invoice_id, email, phone, money, date, card_number, iban, ...
    text: str  # exactly as written (card numbers: masked)
    start: int
    end: int
    value: str  # normalised: ISO date, "12.50 EUR", lower-cased email, masked card number ...


@dataclass(frozen=True)
class Urgency:
    """How fast this conversation needs attention, and why."""

    level: UrgencyLevel = "normal"
    reasons: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        """Sort key: higher is more urgent."""
        return {"normal": 0, "elevated": 1, "urgent": 2}[self.level]


@dataclass(frozen=True)
class Analysis:
    """Everything the engine understood about one customer message."""

    intent: IntentPrediction
    entities: tuple[Entity, ...]
    urgency: Urgency
    redacted_text: str
    latency_ms: float = 0.0


GroundingStatus = Literal["supported", "unsupported", "conversational"]


@dataclass(frozen=True)
class Claim:
    """One checkable statement inside a draft sentence (an amount, a date, a promise ...) and its verdict."""

    kind: str  # amount | percentage | duration | date | phone | email | url | order_id | promise | placeholder
    text: str  # as written in the draft ("EUR 250", "within 5 business days", "refund")
    supported: bool
    source: str = ""  # article id of the passage that supports it, "conversation", or "" when unsupported


@dataclass(frozen=True)
class SentenceGrounding:
    """One sentence of a draft with its verdict and, when supported, the evidence for it."""

    text: str
    start: int  # character offsets in the draft text
    end: int
    status: GroundingStatus
    claims: tuple[Claim, ...] = ()
    source: str = ""  # passage article id (or "conversation") of the evidence
    evidence: str = ""  # the passage (or message) sentence that supports it

    @property
    def unsupported_claims(self) -> tuple[Claim, ...]:
        """The claims no passage (nor, where allowed, the conversation) supports."""
        return tuple(c for c in self.claims if not c.supported)


@dataclass(frozen=True)
class Grounding:
    """Sentence-by-sentence verdict for one draft: what the KB supports, what it does not."""

    sentences: tuple[SentenceGrounding, ...]
    flags: tuple[str, ...] = ()  # one line per unsupported claim, e.g. "unsupported amount EUR 250"

    @property
    def unsupported(self) -> tuple[SentenceGrounding, ...]:
        """Sentences the agent should check (highlighted, droppable with one key)."""
        return tuple(s for s in self.sentences if s.status == "unsupported")

    @property
    def unsupported_promise(self) -> bool:
        """Whether the draft commits to something (refund, discount, "we will ...") no passage allows."""
        return any(c.kind == "promise" and not c.supported for s in self.sentences for c in s.claims)

    @property
    def risky(self) -> bool:
        """Any unsupported claim at all (promise or fact): such a draft never leads the suggestion list."""
        return any(not c.supported for s in self.sentences for c in s.claims)

    @property
    def supported_share(self) -> float:
        """Supported sentences among those that are not conversational (1.0 when all are conversational)."""
        factual = [s for s in self.sentences if s.status != "conversational"]
        if not factual:
            return 1.0
        return sum(s.status == "supported" for s in factual) / len(factual)


@dataclass(frozen=True)
class Suggestion:
    """A finished suggested reply with what it was grounded on and how it was made."""

    text: str
    source_ids: tuple[str, ...]  # article ids of the KB passages it used
    backend: str  # extractive | local | server
    model: str = ""  # model id (+ adapter version) or "" for extractive
    latency_ms: float = 0.0  # total time to produce it
    first_token_ms: float | None = None
    prompt: str = ""  # the exact prompt text (for the feedback log / fine-tuning)
    flags: tuple[str, ...] = ()  # e.g. "unsupported order number 99999"
    grounding: Grounding | None = None  # sentence-level verdict (core.reply.grounding)
    # How the text was made: extractive | select | rewrite | free | extractive-alt | extractive-copy
    # (core.reply.drafting's fallback order); "" for suggestions from engines that do not say.
    strategy: str = ""
    fallbacks: tuple[str, ...] = ()  # strategies tried first for this slot and why each gave nothing usable


@dataclass(frozen=True)
class SuggestionUpdate:
    """A streamed snapshot of one suggestion slot; the newest one replaces older ones for that slot."""

    slot: int  # 0-based position in the suggestion list
    text: str  # full text so far (not a delta: a UI that misses one update still shows the truth)
    backend: str
    done: bool = False
    suggestion: Suggestion | None = None  # set when done
    error: str | None = None  # set when this slot failed (the others still arrive)


@dataclass
class CancelToken:
    """Cooperative cancellation shared between the caller and a generator running in a thread."""

    _event: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        """Ask the work to stop at its next check (generation checks once per token)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel`` was called."""
        return self._event.is_set()

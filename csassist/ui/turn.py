"""One conversation's turn-taking as a plain state machine: what the customer asked, the drafts, what the agent did.

No Textual and no Rich here (a test imports this module and checks), so every rule below is unit-tested
without an app.  The app's handlers and actions call one method each and then do what the method returns:
start the worker for a :class:`DraftRequest`, put a text in the composer, write the feedback events.

The rule this module exists for: **every suggestion shown to the agent gets exactly one feedback outcome**,
and the event keeps the customer message *that suggestion answered* (not whatever arrived later).
"Shown" means finished without an error, or accepted into the composer while it was still streaming; a
draft cut off half-way was never a suggestion the agent could judge.  Every path that takes suggestions
off the screen decides the undecided ones first:

========================================  =========================================================
what happened                             outcome of each undecided shown suggestion
========================================  =========================================================
:meth:`Turn.send`                         the picked one ``accepted`` (sent unchanged) or ``edited``;
                                          the others ``ignored``; all carry the sent text
:meth:`Turn.reject`                       that one ``rejected`` with the agent's reason
:meth:`Turn.regenerate`                   ``rejected`` with reason ``"regenerated"``
:meth:`Turn.receive` (customer writes)    ``ignored``
:meth:`Turn.start_drafting` (redraft)     ``ignored`` (e.g. the reply model arrived, or drafting was
                                          interrupted and starts again)
:meth:`Turn.close` (the app quits)        ``ignored``
========================================  =========================================================

A suggestion that already has an outcome is never given another one.  When the outbox refuses a reply,
:meth:`Turn.send_failed` puts the undecided suggestions back (or, if the turn moved on meanwhile, returns
their events as ``ignored``), so a failed send loses no outcome either.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Any

from csassist.core.learn.feedback import FeedbackEvent
from csassist.core.types import Analysis, CancelToken, Message, Outcome, Passage, Suggestion, SuggestionUpdate


class Phase(enum.Enum):
    """Where the conversation stands (derived from the state, never stored, so it cannot drift)."""

    IDLE = "idle"  # no customer message yet, or the agent has answered the newest one
    ANALYSING = "analysing"  # the newest customer message has no analysis yet (or it failed)
    READY = "ready"  # analysed, no drafts (none asked for yet, or they were taken away)
    DRAFTING = "drafting"  # a generation run is streaming suggestions
    DRAFTED = "drafted"  # the run ended; the suggestions wait for the agent


@dataclass
class SlotState:
    """One suggestion slot of the current turn as the agent sees it."""

    slot: int
    text: str = ""
    backend: str = ""
    done: bool = False
    suggestion: Suggestion | None = None
    error: str | None = None
    first_token_ms: float | None = None
    outcome: Outcome | None = None  # set exactly once, when the feedback event is built

    @property
    def decided(self) -> bool:
        """An outcome was recorded for it."""
        return self.outcome is not None

    @property
    def usable(self) -> bool:
        """Finished with text and no error: a suggestion the agent can judge."""
        return self.done and self.error is None and bool(self.text)


@dataclass(frozen=True)
class DraftRequest:
    """Everything one generation run needs, frozen when it starts (later messages cannot change it).

    It is also what the run's feedback events describe: the customer message, its turn number and its
    analysis are taken from here, so events logged after a newer message arrived still carry the text
    the suggestions answered.
    """

    conversation_id: str
    turn: int
    generation: int  # id of this run; streamed updates of any other run are dropped
    message: Message
    history: tuple[Message, ...]
    analysis: Analysis
    passages: tuple[Passage, ...]
    cancel: CancelToken
    seed: int


@dataclass(frozen=True)
class AnalysisRequest:
    """The newest customer message of a conversation and the history before it, to be analysed."""

    conversation_id: str
    turn: int
    message: Message
    history: tuple[Message, ...]


@dataclass(frozen=True)
class Reply:
    """What :meth:`Turn.send` produced: the agent's message, the feedback events and the outbox metadata.

    ``undo`` is the turn's draft state before the send, used by :meth:`Turn.send_failed` to put the
    suggestions back when the outbox refuses the reply.
    """

    message: Message
    events: tuple[FeedbackEvent, ...]
    meta: dict[str, Any]
    undo: _Undo


@dataclass(frozen=True)
class _Undo:
    """The draft state a failed send restores."""

    slots: tuple[SlotState, ...]
    drafted: DraftRequest | None
    picked: int | None
    picked_text: str


class Turn:
    """A conversation's messages and the state of its current turn, changed only through these methods."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.messages: list[Message] = []
        self.number = 0  # customer messages so far; turn N answers the N-th
        self.waiting_since: float | None = None  # ts of the oldest unanswered customer message
        self.analysis: Analysis | None = None
        self.passages: list[Passage] = []
        self.analysed = 0  # the turn the analysis belongs to
        self.analysis_error: str | None = None  # why the newest message could not be analysed
        self.intent_correction: str | None = None  # the agent's intent for the analysed turn
        self.slots: dict[int, SlotState] = {}
        self.drafted: DraftRequest | None = None  # the run the slots come from
        self.generation = 0  # id of the newest run (also bumped when a run is stopped)
        self.drafting = False
        self.picked: int | None = None  # slot accepted into the composer
        self.picked_text = ""

    # -- reading -------------------------------------------------------------------------------
    @property
    def last_customer_message(self) -> Message | None:
        """The newest customer message (what the suggestions answer)."""
        for message in reversed(self.messages):
            if message.speaker == "customer":
                return message
        return None

    @property
    def awaiting_reply(self) -> bool:
        """The newest message is the customer's: nobody has answered it yet."""
        return bool(self.messages) and self.messages[-1].speaker == "customer"

    @property
    def phase(self) -> Phase:
        """The state this turn is in (see :class:`Phase`)."""
        if self.drafting:
            return Phase.DRAFTING
        if not self.awaiting_reply:
            return Phase.IDLE
        if self.analysed != self.number or self.analysis is None:
            return Phase.ANALYSING
        if self.slots and all(s.done for s in self.slots.values()):
            return Phase.DRAFTED
        return Phase.READY

    @property
    def needs_drafts(self) -> bool:
        """Analysed, unanswered, and neither drafting nor holding a finished set of drafts."""
        return self.phase is Phase.READY

    def history_before_last_customer(self) -> tuple[Message, ...]:
        """Every message before the newest customer one (the history the engine gets)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].speaker == "customer":
                return tuple(self.messages[:index])
        return tuple(self.messages)

    def shown(self) -> list[SlotState]:
        """Suggestions the agent has seen that have no outcome yet (in slot order)."""
        return [s for _, s in sorted(self.slots.items())
                if not s.decided and (s.usable or (s.slot == self.picked and s.text))]

    # -- the customer side ---------------------------------------------------------------------
    def receive(self, message: Message, now: float) -> list[FeedbackEvent]:
        """Add a message.  A customer message opens a new turn: the drafts in flight stop and the
        undecided shown suggestions of the old turn are ``ignored`` (with the old turn's text)."""
        if message.speaker != "customer":
            events: list[FeedbackEvent] = []
            if self.awaiting_reply:  # answered elsewhere (e.g. in Chatwoot itself): this turn is closed here too
                events = [self._decide(state, "ignored", now, final_text=message.text) for state in self.shown()]
                self._clear_drafts()
            self.messages.append(message)
            self.waiting_since = None  # someone answered (another agent, a feed replaying a reply)
            return events
        events = self._decide_all("ignored", None, now)
        self._clear_drafts()
        self.messages.append(message)
        self.number += 1
        self.analysis_error = None
        if self.waiting_since is None:  # a ts that is no time at all (inf, NaN) must not reach the clock maths
            self.waiting_since = message.ts if math.isfinite(message.ts) and message.ts > 0 else now
        return events

    def analysis_request(self) -> AnalysisRequest | None:
        """What to analyse now: the newest customer message when its turn has no analysis yet."""
        message = self.last_customer_message
        if message is None or self.analysed == self.number:
            return None
        return AnalysisRequest(self.conversation_id, self.number, message, self.history_before_last_customer())

    def analysed_as(self, turn: int, analysis: Analysis, passages: list[Passage]) -> bool:
        """Store the analysis of ``turn``; False (nothing changed) when a newer message came meanwhile."""
        if turn != self.number:
            return False
        self.analysis, self.passages, self.analysed = analysis, list(passages), turn
        self.analysis_error = None
        self.intent_correction = None
        return True

    def analysis_failed(self, turn: int, error: str) -> bool:
        """Remember that ``turn`` could not be analysed (shown to the agent; the next message is tried anew)."""
        if turn != self.number:
            return False
        self.analysis_error = error
        return True

    def correct_intent(self, label: str) -> None:
        """The agent's intent for the analysed turn; it goes into the events of that turn's suggestions."""
        self.intent_correction = label

    # -- drafting ------------------------------------------------------------------------------
    def start_drafting(self, now: float, seed: int = 0, force: bool = False) -> tuple[DraftRequest | None,
                                                                                    list[FeedbackEvent]]:
        """A new generation run for the analysed turn, or ``None`` when there is nothing to draft.

        Without ``force`` only a turn in :attr:`Phase.READY` is drafted (not one that is drafting or
        drafted already).  Suggestions the new run replaces that were shown and not decided are ``ignored``.
        """
        message = self.last_customer_message
        if (message is None or self.analysis is None or self.analysed != self.number or not self.awaiting_reply
                or (not force and not self.needs_drafts)):
            return None, []
        events = self._decide_all("ignored", None, now)
        self._clear_drafts()
        self.drafting = True
        self.drafted = DraftRequest(self.conversation_id, self.number, self.generation, message,
                                    self.history_before_last_customer(), self.analysis, tuple(self.passages),
                                    CancelToken(), seed)
        return self.drafted, events

    def stop_drafting(self) -> None:
        """Cancel the run in flight (its late updates are dropped); the slots it produced stay."""
        if self.drafted is not None:
            self.drafted.cancel.cancel()
        self.generation += 1
        self.drafting = False

    def apply(self, generation: int, update: SuggestionUpdate, first_token_ms: float | None = None) -> bool:
        """Apply a streamed snapshot of one slot; False (ignored) when it belongs to a stopped run or the slot
        has finished already (a finished suggestion is final: what the agent judged is what gets logged)."""
        if generation != self.generation or self.drafted is None:
            return False
        slot = self.slots.setdefault(update.slot, SlotState(update.slot))
        if slot.done or slot.decided:
            return False
        slot.text, slot.backend, slot.done = update.text, update.backend, update.done
        slot.suggestion, slot.error = update.suggestion, update.error
        if first_token_ms is not None and slot.first_token_ms is None:
            slot.first_token_ms = first_token_ms
        return True

    def finished(self, generation: int) -> bool:
        """The run ``generation`` ended (done, cancelled or failed); False when it was already replaced."""
        if generation != self.generation:
            return False
        self.drafting = False
        return True

    def regenerate(self, now: float) -> tuple[DraftRequest | None, list[FeedbackEvent]]:
        """New drafts with a new seed; the undecided shown ones are ``rejected`` (reason ``regenerated``)."""
        if self.analysis is None or self.analysed != self.number or not self.awaiting_reply:
            return None, []
        events = self._decide_all("rejected", "regenerated", now)
        request, more = self.start_drafting(now, seed=self.generation + 1, force=True)
        return request, events + more

    # -- the agent's side ----------------------------------------------------------------------
    def accept(self, slot: int) -> str | None:
        """Pick suggestion ``slot`` for the composer; its text, or ``None`` when it is not there (yet)."""
        state = self.slots.get(slot)
        if state is None or not state.text or state.error is not None or state.decided:
            return None
        self.picked, self.picked_text = slot, state.text
        return state.text

    def unpick(self) -> None:
        """The composer no longer holds a suggestion (e.g. a KB answer replaced it)."""
        self.picked, self.picked_text = None, ""

    def reject(self, slot: int, reason: str, now: float, generation: int | None = None) -> FeedbackEvent | None:
        """``rejected`` with ``reason`` for a shown, undecided ``slot``; ``None`` when that is not possible.

        ``generation`` is the run the agent was looking at when asked for a reason: if the drafts were
        replaced while the reason modal was open, nothing is rejected.
        """
        state = self.slots.get(slot)
        if state is None or state.decided or not state.usable:
            return None
        if generation is not None and (self.drafted is None or self.drafted.generation != generation):
            return None
        event = self._decide(state, "rejected", now, reason=reason)
        state.error = f"rejected: {reason}"
        if self.picked == slot:
            self.unpick()
        return event

    def send(self, text: str, now: float) -> Reply:
        """Send ``text`` as the agent's reply: outcomes for every shown suggestion, the drafts are done.

        The picked suggestion is ``accepted`` when ``text`` equals it (outer whitespace aside), else
        ``edited``; every other shown one is ``ignored``.  All carry ``text`` as ``final_text``: the
        agent's own reply to that prompt is still useful training data.
        """
        if not text.strip():
            raise ValueError("an empty reply cannot be sent")
        undo = _Undo(tuple(replace(s) for s in self.slots.values()), self.drafted, self.picked, self.picked_text)
        picked = self.picked
        events: list[FeedbackEvent] = []
        for state in self.shown():
            outcome: Outcome = "ignored"
            if state.slot == picked:
                original = state.suggestion.text if state.suggestion else state.text
                outcome = "accepted" if original.strip() == text.strip() else "edited"
            events.append(self._decide(state, outcome, now, final_text=text))
        customer = self.last_customer_message
        if customer is not None and math.isfinite(customer.ts) and 0 < customer.ts <= now:
            events = [replace(e, reply_s=now - customer.ts) for e in events]  # time to reply, for team stats
        chosen = next((e.outcome for e in events if e.slot == picked), "written")
        meta: dict[str, Any] = {"turn": self.number, "intent": self.intent_label, "slot": picked, "outcome": chosen}
        message = Message(self.conversation_id, "agent", text, ts=now)
        self._clear_drafts()
        self.messages.append(message)
        self.waiting_since = None
        return Reply(message, tuple(events), meta, undo)

    def send_failed(self, reply: Reply, now: float) -> list[FeedbackEvent]:
        """The outbox refused ``reply``: take it out of the transcript and give its suggestions back.

        If the turn is unchanged the suggestions return undecided (the agent can send again).  If it moved
        on (a new customer message, new drafts), their outcomes are returned as ``ignored``: the reply
        they went into was never delivered.
        """
        if reply.message in self.messages:
            self.messages.remove(reply.message)
            last = self.last_customer_message
            if self.awaiting_reply and self.waiting_since is None and last is not None:
                self.waiting_since = last.ts if math.isfinite(last.ts) and last.ts > 0 else now
        turn_unchanged = not self.slots and self.drafted is None and not self.drafting and (
            reply.undo.drafted is None or reply.undo.drafted.turn == self.number)
        if turn_unchanged:
            self.slots = {s.slot: replace(s, outcome=None) for s in reply.undo.slots}
            self.drafted, self.picked, self.picked_text = reply.undo.drafted, reply.undo.picked, reply.undo.picked_text
            return []
        return [replace(e, outcome="ignored", final_text=None) for e in reply.events]

    def close(self, now: float) -> list[FeedbackEvent]:
        """The app is quitting: stop drafting; the undecided shown suggestions are ``ignored``."""
        events = self._decide_all("ignored", None, now)
        self.stop_drafting()
        return events

    # -- internals -----------------------------------------------------------------------------
    @property
    def intent_label(self) -> str:
        """The intent to show: the agent's correction wins over the model's guess."""
        if self.intent_correction:
            return self.intent_correction
        if self.analysis is None or not self.analysis.intent.top:
            return ""  # not analysed yet, or no intent model
        return self.analysis.intent.intent or "out of scope"

    def _clear_drafts(self) -> None:
        """Stop the run and forget its slots (callers decided the shown ones first)."""
        self.stop_drafting()
        self.slots, self.drafted = {}, None
        self.unpick()

    def _decide_all(self, outcome: Outcome, reason: str | None, now: float) -> list[FeedbackEvent]:
        """The same outcome for every undecided shown suggestion."""
        return [self._decide(state, outcome, now, reason=reason) for state in self.shown()]

    def _decide(self, state: SlotState, outcome: Outcome, now: float, *, final_text: str | None = None,
                reason: str | None = None) -> FeedbackEvent:
        """Give ``state`` its one outcome and describe it as a feedback event of the run it came from."""
        if state.decided:  # a bug, not bad input: two outcomes would double-count in stats and training
            raise RuntimeError(f"slot {state.slot} of {self.conversation_id} already has outcome {state.outcome}")
        drafted = self.drafted
        if drafted is None:
            raise RuntimeError(f"slot {state.slot} of {self.conversation_id} has no generation run")
        state.outcome = outcome
        suggestion = state.suggestion
        correction = self.intent_correction if self.analysed == drafted.turn else None
        return FeedbackEvent(
            conversation_id=self.conversation_id,
            turn=drafted.turn,
            slot=state.slot,
            suggestion_text=suggestion.text if suggestion else state.text,
            prompt=suggestion.prompt if suggestion else "",
            backend=suggestion.backend if suggestion else state.backend,
            model=suggestion.model if suggestion else "",
            source_ids=suggestion.source_ids if suggestion else (),
            intent=drafted.analysis.intent.intent,
            intent_correction=correction,
            outcome=outcome,
            final_text=final_text,
            reject_reason=reason,
            latency_ms=suggestion.latency_ms if suggestion else None,
            first_token_ms=(suggestion.first_token_ms if suggestion and suggestion.first_token_ms is not None
                            else state.first_token_ms),
            ts=now,
            customer_text=drafted.message.text,
        )


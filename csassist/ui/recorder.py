"""Turning what the agent did with the suggestions into feedback events (pure; no I/O here).

Rules, so every shown suggestion gets exactly one outcome:

* sending a reply: the accepted slot is ``accepted`` when the sent text equals it (ignoring outer
  whitespace), else ``edited``; every other finished slot is ``ignored`` (with the sent text as
  ``final_text``, since the agent's own reply to that prompt is still useful training data);
* rejecting a slot: ``rejected`` with the reason;
* regenerating: the finished slots not yet decided are ``rejected`` with reason ``"regenerated"``;
* a new customer message arrives first: the undecided slots are ``ignored``.
"""

from __future__ import annotations

from csassist.core.learn.feedback import FeedbackEvent
from csassist.core.types import Outcome
from csassist.ui.state import ConversationState, SlotState


def build_event(conv: ConversationState, slot: SlotState, outcome: Outcome, *, final_text: str | None = None,
                reason: str | None = None, ts: float = 0.0) -> FeedbackEvent:
    """One feedback event for ``slot`` of ``conv``'s current turn."""
    suggestion = slot.suggestion
    customer = conv.last_customer_message
    return FeedbackEvent(
        conversation_id=conv.conversation_id,
        turn=conv.slots_turn,
        slot=slot.slot,
        suggestion_text=suggestion.text if suggestion else slot.text,
        prompt=suggestion.prompt if suggestion else "",
        backend=suggestion.backend if suggestion else slot.backend,
        model=suggestion.model if suggestion else "",
        source_ids=suggestion.source_ids if suggestion else (),
        intent=conv.analysis.intent.intent if conv.analysis else None,
        intent_correction=conv.intent_correction,
        outcome=outcome,
        final_text=final_text,
        reject_reason=reason,
        latency_ms=suggestion.latency_ms if suggestion else None,
        first_token_ms=(suggestion.first_token_ms if suggestion and suggestion.first_token_ms is not None
                        else slot.first_token_ms),
        ts=ts,
        customer_text=customer.text if customer else None,
    )


def events_for_send(conv: ConversationState, final_text: str, ts: float) -> list[FeedbackEvent]:
    """Outcomes of all undecided slots when ``final_text`` is sent; marks them decided."""
    events: list[FeedbackEvent] = []
    for slot in conv.undecided_slots():
        if slot.slot == conv.picked:
            original = slot.suggestion.text if slot.suggestion else slot.text
            outcome: Outcome = "accepted" if original.strip() == final_text.strip() else "edited"
        else:
            outcome = "ignored"
        events.append(build_event(conv, slot, outcome, final_text=final_text, ts=ts))
        slot.decided = True
    return events


def events_for_all(conv: ConversationState, outcome: Outcome, reason: str | None, ts: float) -> list[FeedbackEvent]:
    """The same outcome for every undecided slot (regenerate, superseded); marks them decided."""
    events = [build_event(conv, slot, outcome, reason=reason, ts=ts) for slot in conv.undecided_slots()]
    for slot in conv.undecided_slots():
        slot.decided = True
    return events

"""The turn state machine without Textual: every shown suggestion gets exactly one outcome.

Each path that takes suggestions off the screen (send, reject, regenerate, a new customer message, a
redraft, quitting, a failed send) is tested on its own, then a seeded random walk over all of them checks
the rule as a whole: no shown suggestion without an outcome, none with two, each event with the customer
text of the turn it answered.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import pytest

from csassist.core.learn.feedback import FeedbackEvent
from csassist.core.types import Message, Suggestion, SuggestionUpdate
from csassist.ui.turn import DraftRequest, Phase, Reply, Turn
from tests.ui.fakes import FakeAssistant

NOW = 1_767_225_600.0
ENGINE = FakeAssistant()


def customer(text: str, ts: float = NOW) -> Message:
    """A customer message of conversation c1."""
    return Message("c1", "customer", text, ts=ts, customer="Ana")


def arrive(turn: Turn, text: str) -> list[FeedbackEvent]:
    """A customer message arrives and is analysed at once; returns the events of what it superseded."""
    events = turn.receive(customer(text), NOW)
    request = turn.analysis_request()
    assert request is not None and request.message.text == text
    assert turn.analysed_as(request.turn, ENGINE.analyze(text), ENGINE.retrieve(text, 3))
    return events


def draft(turn: Turn, **kwargs: object) -> DraftRequest:
    """Start drafting; there must be something to draft."""
    request, events = turn.start_drafting(NOW, **kwargs)  # type: ignore[arg-type]
    assert request is not None
    assert events == []
    return request


def finish(turn: Turn, request: DraftRequest, slots: range = range(3)) -> None:
    """Stream each slot to its end, with a text that names its run and slot."""
    for slot in slots:
        text = f"reply g{request.generation} s{slot} to {request.message.text}"
        assert turn.apply(request.generation, SuggestionUpdate(slot, text[:5], "local"), 12.0)
        suggestion = Suggestion(text, ("a",), "local", "m", 30.0, None, f"prompt {slot}")
        assert turn.apply(request.generation, SuggestionUpdate(slot, text, "local", done=True, suggestion=suggestion))
    assert turn.finished(request.generation)


def outcomes(events: list[FeedbackEvent] | tuple[FeedbackEvent, ...]) -> dict[int, str]:
    """slot -> outcome."""
    return {e.slot: e.outcome for e in events}


def test_phases_from_message_to_reply() -> None:
    """idle -> analysing -> ready -> drafting -> drafted -> idle after the reply."""
    turn = Turn("c1")
    assert turn.phase is Phase.IDLE
    turn.receive(customer("where is my parcel"), NOW)
    assert turn.phase is Phase.ANALYSING and turn.start_drafting(NOW) == (None, [])
    turn.analysed_as(1, ENGINE.analyze("where is my parcel"), [])
    assert turn.phase is Phase.READY and turn.needs_drafts
    request = draft(turn)
    assert turn.phase is Phase.DRAFTING and request.turn == 1 and request.message.text == "where is my parcel"
    finish(turn, request)
    assert turn.phase is Phase.DRAFTED and not turn.needs_drafts
    reply = turn.send("On its way.", NOW)
    assert turn.phase is Phase.IDLE and turn.slots == {} and turn.waiting_since is None
    assert reply.message == Message("c1", "agent", "On its way.", ts=NOW)
    assert turn.start_drafting(NOW, force=True) == (None, [])  # answered: nothing to draft


def test_send_accepted_edited_and_ignored() -> None:
    """The picked suggestion sent unchanged is accepted; the others are ignored with the sent text."""
    turn = Turn("c1")
    arrive(turn, "refund please")
    request = draft(turn)
    finish(turn, request)
    text = turn.accept(1)
    assert text is not None and turn.picked == 1
    reply = turn.send(f"  {text} ", NOW)
    assert outcomes(reply.events) == {0: "ignored", 1: "accepted", 2: "ignored"}
    assert {e.final_text for e in reply.events} == {f"  {text} "}
    assert reply.meta == {"turn": 1, "intent": "refund_request", "slot": 1, "outcome": "accepted"}
    assert turn.close(NOW) == []  # all decided already

    turn2 = Turn("c2")
    arrive(turn2, "refund please")
    finish(turn2, draft(turn2))
    turn2.accept(0)
    reply2 = turn2.send("Something else entirely", NOW)
    assert outcomes(reply2.events) == {0: "edited", 1: "ignored", 2: "ignored"}


def test_a_written_reply_ignores_every_suggestion() -> None:
    """Nothing picked: every shown suggestion is ignored and the outbox hears 'written'."""
    turn = Turn("c1")
    arrive(turn, "hello")
    finish(turn, draft(turn))
    reply = turn.send("My own words", NOW)
    assert outcomes(reply.events) == {0: "ignored", 1: "ignored", 2: "ignored"}
    assert reply.meta["outcome"] == "written" and reply.meta["slot"] is None
    with pytest.raises(ValueError):
        turn.send("   ", NOW)


def test_new_customer_message_mid_draft_keeps_the_old_turns_text() -> None:
    """Finished suggestions are ignored with the text they answered; half-streamed ones never counted."""
    turn = Turn("c1")
    arrive(turn, "where is my parcel")
    request = draft(turn)
    finish(turn, request, range(1))  # slot 0 finished, slot 1 half-way
    assert turn.apply(request.generation, SuggestionUpdate(1, "Hi! Dra", "local"))
    turn.correct_intent("cancel_order")
    events = turn.receive(customer("actually I want a refund"), NOW)
    assert [(e.turn, e.slot, e.outcome, e.customer_text, e.intent, e.intent_correction) for e in events] == [
        (1, 0, "ignored", "where is my parcel", "missing_parcel", "cancel_order")]
    assert request.cancel.cancelled and not turn.drafting and turn.slots == {}
    assert not turn.apply(request.generation, SuggestionUpdate(1, "Hi! Draft", "local"))  # stale run dropped
    assert not turn.analysed_as(1, ENGINE.analyze("where is my parcel"), [])  # stale analysis dropped
    assert turn.analysed_as(2, ENGINE.analyze("actually I want a refund"), [])
    second = draft(turn)
    finish(turn, second)
    reply = turn.send("Refund on its way", NOW)
    assert {e.customer_text for e in reply.events} == {"actually I want a refund"}
    assert {e.turn for e in reply.events} == {2} and {e.intent for e in reply.events} == {"refund_request"}


def test_reject_once_and_only_a_shown_suggestion() -> None:
    """Rejecting twice, an unfinished slot, or drafts replaced while the reason was asked does nothing."""
    turn = Turn("c1")
    arrive(turn, "reset my password")
    request = draft(turn)
    finish(turn, request, range(2))
    assert turn.apply(request.generation, SuggestionUpdate(2, "Hi", "local"))
    assert turn.reject(2, "wrong tone", NOW) is None  # still streaming
    turn.accept(1)
    event = turn.reject(1, "wrong tone", NOW, request.generation)
    assert event is not None and (event.outcome, event.reject_reason) == ("rejected", "wrong tone")
    assert turn.picked is None and turn.slots[1].error == "rejected: wrong tone"
    assert turn.reject(1, "again", NOW) is None
    assert turn.accept(1) is None  # a rejected suggestion cannot be used
    assert turn.reject(0, "stale", NOW, generation=request.generation + 7) is None
    reply = turn.send("ok", NOW)
    assert outcomes(reply.events) == {0: "ignored"}  # 1 has its outcome; 2 never finished


def test_regenerate_rejects_the_undecided_and_drops_the_old_run() -> None:
    """r: undecided shown suggestions are 'rejected: regenerated'; a new seed; late old updates are dropped."""
    turn = Turn("c1")
    arrive(turn, "where is my parcel")
    first = draft(turn)
    finish(turn, first)
    assert turn.reject(2, "wrong facts", NOW) is not None
    second, events = turn.regenerate(NOW)
    assert second is not None and second.seed != first.seed and first.cancel.cancelled
    assert [(e.slot, e.outcome, e.reject_reason) for e in events] == [(0, "rejected", "regenerated"),
                                                                       (1, "rejected", "regenerated")]
    assert not turn.apply(first.generation, SuggestionUpdate(0, "late", "local", done=True))
    finish(turn, second)
    assert outcomes(turn.close(NOW)) == {0: "ignored", 1: "ignored", 2: "ignored"}


def test_redraft_and_quit_ignore_what_was_shown() -> None:
    """A forced redraft (reply model arrived) and quitting both give 'ignored' to what the agent saw."""
    turn = Turn("c1")
    arrive(turn, "hello")
    first = draft(turn)
    finish(turn, first, range(1))
    assert turn.apply(first.generation, SuggestionUpdate(1, "Hi", "local"))
    turn.stop_drafting()  # the agent opened another conversation: slot 1 never finished
    assert first.cancel.cancelled and turn.needs_drafts
    second, events = turn.start_drafting(NOW, force=True)
    assert second is not None and outcomes(events) == {0: "ignored"}
    finish(turn, second, range(2))
    turn.accept(1)
    assert outcomes(turn.close(NOW)) == {0: "ignored", 1: "ignored"}
    assert second.cancel.cancelled and turn.close(NOW) == []


def test_a_picked_suggestion_still_streaming_counts_as_shown() -> None:
    """Accepting a draft before it finished: the send still gives it an outcome."""
    turn = Turn("c1")
    arrive(turn, "hello")
    request = draft(turn)
    assert turn.apply(request.generation, SuggestionUpdate(1, "Hi there", "local"))
    assert turn.accept(1) == "Hi there"
    reply = turn.send("Hi there", NOW)
    assert outcomes(reply.events) == {1: "accepted"}


def test_failed_send_gives_the_suggestions_back() -> None:
    """Outbox refused: the reply leaves the transcript, the suggestions return undecided; a resend decides."""
    turn = Turn("c1")
    arrive(turn, "hello")
    finish(turn, draft(turn))
    turn.accept(0)
    reply = turn.send("Hi", NOW)
    assert turn.send_failed(reply, NOW) == []
    assert reply.message not in turn.messages and turn.awaiting_reply and turn.waiting_since == NOW
    assert turn.picked == 0 and not any(s.decided for s in turn.slots.values())
    again = turn.send("Hi", NOW)
    assert outcomes(again.events) == {0: "edited", 1: "ignored", 2: "ignored"}


def test_failed_send_after_the_turn_moved_on_is_ignored() -> None:
    """If the customer wrote again before the failure came back, the events become 'ignored' (not lost)."""
    turn = Turn("c1")
    arrive(turn, "hello")
    finish(turn, draft(turn))
    turn.accept(2)
    reply = turn.send("Hi", NOW)
    assert arrive(turn, "still there?") == []
    draft(turn)
    events = turn.send_failed(reply, NOW)
    assert [(e.slot, e.outcome, e.final_text, e.customer_text) for e in events] == [
        (0, "ignored", None, "hello"), (1, "ignored", None, "hello"), (2, "ignored", None, "hello")]


def test_bad_timestamps_never_reach_the_clock_maths() -> None:
    """inf / NaN / 0 ts: the wait counts from now instead."""
    for ts in (float("inf"), float("nan"), 0.0, -5.0):
        turn = Turn("c1")
        turn.receive(customer("hi", ts=ts), NOW)
        assert turn.waiting_since == NOW


@pytest.mark.parametrize("seed", range(40))
def test_random_walk_every_shown_suggestion_gets_exactly_one_outcome(seed: int) -> None:
    """Random interleavings of every operation: shown suggestions and events match one to one."""
    rng = random.Random(seed)
    turn = Turn("c1")
    shown: dict[str, str] = {}  # unique suggestion text -> the customer text it answered
    events: list[FeedbackEvent] = []
    requests: list[DraftRequest] = []
    refused: list[Reply] = []
    texts = iter(f"message {i}" for i in range(1000))

    def key(text: str) -> str:
        """Which run and slot a (partial or full) suggestion text belongs to."""
        return " ".join(text.split()[:2])

    def apply(request: DraftRequest, slot: int, done: bool) -> None:
        text = f"g{request.generation} s{slot}"
        update = SuggestionUpdate(slot, text if done else text + " …", "local", done=done,
                                  suggestion=Suggestion(text, (), "local") if done else None)
        if turn.apply(request.generation, update) and done:
            shown[text] = request.message.text

    weights = {"customer": 2, "analyse": 3, "draft": 3, "stream": 14, "finish": 1, "accept": 3, "reject": 2,
               "regenerate": 1, "send": 2, "fail": 1, "stop": 1, "agent": 1}
    for _ in range(250):
        op = rng.choices(list(weights), list(weights.values()))[0]
        if op == "customer":
            events += turn.receive(customer(next(texts)), NOW)
        elif op == "analyse" and (request := turn.analysis_request()):
            turn.analysed_as(request.turn, ENGINE.analyze(request.message.text), [])
        elif op == "draft":
            drafted, more = turn.start_drafting(NOW, force=rng.random() < 0.3)
            events += more
            requests += [drafted] if drafted else []
        elif op == "stream" and requests:  # mostly the newest run; sometimes a late update of an old one
            apply(requests[-1] if rng.random() < 0.85 else rng.choice(requests), rng.randrange(3), rng.random() < 0.6)
        elif op == "finish" and requests:
            turn.finished(rng.choice(requests).generation)
        elif op == "accept":
            slot = rng.randrange(3)
            state = turn.slots.get(slot)
            if turn.accept(slot) is not None and state is not None and turn.drafted is not None:
                shown.setdefault(key(state.text), turn.drafted.message.text)  # seen, even if still streaming
        elif op == "reject" and (event := turn.reject(rng.randrange(3), "no", NOW)):
            events.append(event)
        elif op == "regenerate":
            drafted, more = turn.regenerate(NOW)
            events += more
            requests += [drafted] if drafted else []
        elif op == "send" and turn.messages:
            reply = turn.send(turn.picked_text if turn.picked is not None and rng.random() < 0.5 else "sent", NOW)
            events += reply.events
            if rng.random() < 0.3:  # the outbox will refuse it (now, or after more has happened)
                refused.append(reply)
        elif op == "fail" and refused:  # a refused reply's events were never written
            reply = refused.pop(0)
            events = [e for e in events if e not in reply.events]
            events += turn.send_failed(reply, NOW)
        elif op == "stop":
            turn.stop_drafting()
        elif op == "agent":
            events += turn.receive(Message("c1", "agent", "from elsewhere", ts=NOW), NOW)
    events += turn.close(NOW)
    counted = Counter(key(e.suggestion_text) for e in events)
    assert all(n == 1 for n in counted.values()), counted  # none twice
    assert set(counted) == set(shown)  # none lost, none invented
    assert all(e.customer_text == shown[key(e.suggestion_text)] for e in events)  # each with its own turn's text


def test_the_state_machine_imports_no_ui_library() -> None:
    """ui/turn.py and ui/backlog.py stay plain Python: no textual, no rich in a fresh interpreter."""
    code = ("import sys\nimport csassist.ui.turn, csassist.ui.backlog\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_reply_written_in_the_helpdesk_closes_the_turn_here_too() -> None:
    """Issue 12: the agent answered in Chatwoot itself; the drafts here are done, each ``ignored`` once."""
    turn = Turn("c1")
    arrive(turn, "Where is my parcel?")
    finish(turn, draft(turn))
    events = turn.receive(Message("c1", "agent", "Answered in Chatwoot.", ts=NOW), NOW)
    assert outcomes(events) == {0: "ignored", 1: "ignored", 2: "ignored"}
    assert {e.final_text for e in events} == {"Answered in Chatwoot."}
    assert turn.shown() == [] and not turn.awaiting_reply and turn.waiting_since is None
    assert turn.receive(Message("c1", "agent", "and a second line", ts=NOW), NOW) == []  # nothing left to close

"""The demo inbox: the bundled conversations replayed with their timing, several customers at once.

Kept apart from :mod:`csassist.core.io.sources` (real feeds: files, stdin) because its job is different:
a scripted scene that should feel live, including customers who answer only after the agent replied.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from csassist.core.errors import CsassistError
from csassist.core.io.conversation_files import demo_conversations_dir, jsonl_files, read_conversations
from csassist.core.io.sources import ProblemSink, ThreadedSource
from csassist.core.types import Message

# --------------------------------------------------------------------------------------------------
# Demo replay
# --------------------------------------------------------------------------------------------------


def build_schedule(messages: Sequence[Message], *, include_agent: bool = False) -> list[tuple[float, Message]]:
    """Turn one file's messages into ``(seconds from start, message)`` pairs, sorted by time.

    ``delay`` means "seconds after the previous line".  When the file already interleaves several
    conversations, that is taken literally (file order = replay order).  When each conversation's
    lines are contiguous, each conversation gets its own clock: its first line comes ``delay`` after
    the *start* of the previous conversation and later lines follow their own conversation, so
    several customers write at the same time as in a real inbox.  Skipped agent lines pass their
    delay on to the next line so the customer's timing is preserved.
    """
    order: list[str] = []
    contiguous = True
    for message in messages:
        if message.conversation_id not in order:
            order.append(message.conversation_id)
        elif order[-1] != message.conversation_id:
            contiguous = False
    events: list[tuple[float, Message]] = []
    if not contiguous:
        clock = 0.0
        for message in messages:
            clock += message.delay
            if include_agent or message.speaker == "customer":
                events.append((clock, message))
    else:
        conv_start = 0.0
        last: dict[str, float] = {}
        for message in messages:
            cid = message.conversation_id
            if cid not in last:
                conv_start = conv_start + message.delay
                last[cid] = conv_start
            else:
                last[cid] += message.delay
            if include_agent or message.speaker == "customer":
                events.append((last[cid], message))
    events.sort(key=lambda pair: pair[0])  # stable: equal times keep file order
    return events


class DemoReplay(ThreadedSource):
    """Replays the bundled demo conversations with their timing, several customers at once.

    ``speed`` divides every delay (``speed=2`` runs twice as fast; ``math.inf`` replays instantly).
    With ``loop=True`` the whole set starts again after ``loop_gap`` seconds, with conversation ids
    suffixed ``~2``, ``~3``... so replays appear as new conversations.  Agent lines are skipped unless
    ``include_agent`` (in the demo the user is the agent).  Each message's ``ts`` is the time it is
    emitted.  Several files replay in parallel, each on its own clock.  ``lead_in`` caps the wait
    before the first message (script seconds; ``None`` keeps the script's own start).

    With ``wait_for_agent=True`` (what the app uses) a customer line that follows an agent line in
    the script waits until the user has actually replied in that conversation (:meth:`agent_replied`),
    then comes its own ``delay`` later: the customer's "thanks, that worked" answers *your* reply
    instead of arriving over a transcript with no reply in it.  Opening lines keep the script's
    timing; ``loop`` is ignored in this mode.
    """

    def __init__(
        self,
        path: Path | str | Sequence[Path | str] | None = None,
        *,
        speed: float = 1.0,
        loop: bool = False,
        loop_gap: float = 10.0,
        include_agent: bool = False,
        lead_in: float | None = 1.0,
        wait_for_agent: bool = False,
        on_problem: ProblemSink | None = None,
    ) -> None:
        super().__init__(on_problem)
        if not speed > 0:
            raise CsassistError(f"demo speed must be positive, got {speed}")
        self.wait_for_agent = wait_for_agent and not include_agent
        #: id(message) -> how many agent replies its conversation needs before it may arrive.
        self._gates: dict[int, int] = {}
        self._replies: dict[str, int] = {}
        self._awaiting_reply: set[str] = set()
        self._replies_lock = threading.Lock()
        if path is None:
            self.paths = [demo_conversations_dir()]
        elif isinstance(path, (str, Path)):
            self.paths = [Path(path)]
        else:
            self.paths = [Path(p) for p in path]
        self.speed = speed
        self.loop = loop
        self.loop_gap = loop_gap
        self.include_agent = include_agent
        self.lead_in = lead_in
        self.description = "demo replay"
        self._events: list[tuple[float, Message]] = []

    def _prepare(self) -> None:
        """Load and schedule every file now so a missing demo is a clear error at start."""
        events: list[tuple[float, Message]] = []
        problems: list[str] = []
        for base in self.paths:
            for file in jsonl_files(Path(base)):
                messages, file_problems = read_conversations(file)
                problems.extend(file_problems)
                events.extend(build_schedule(messages, include_agent=self.include_agent))
                self._gates.update(_agent_gates(messages))
        events.sort(key=lambda pair: pair[0])
        for problem in problems:
            self._problem(problem)
        if not events:
            where = ", ".join(str(p) for p in self.paths)
            raise CsassistError(f"{where}: no demo conversations to replay")
        if self.lead_in is not None and events[0][0] > self.lead_in:
            shift = events[0][0] - self.lead_in  # nobody should stare at an empty inbox for long
            events = [(offset - shift, message) for offset, message in events]
        self._events = events

    @property
    def message_count(self) -> int:
        """Messages in one pass of the replay."""
        return len(self._events)

    def agent_replied(self, conversation_id: str) -> None:
        """The user sent a reply in ``conversation_id``: release the customer's next scripted lines.

        Several replies in a row count once, like one agent turn in the script.
        """
        with self._replies_lock:
            if conversation_id in self._awaiting_reply:
                self._awaiting_reply.discard(conversation_id)
                self._replies[conversation_id] = self._replies.get(conversation_id, 0) + 1

    def _run(self) -> None:
        """Wait for each event's time (interruptibly) and emit it with ``ts`` = now."""
        if self.wait_for_agent:
            self._run_waiting_for_agent()
            return
        round_no = 1
        while not self.stopping:
            started = time.monotonic()
            for offset, message in self._events:
                due = started + offset / self.speed
                remaining = due - time.monotonic()
                if remaining > 0 and self._stop_event.wait(remaining):
                    return
                if self.stopping:
                    return
                cid = message.conversation_id if round_no == 1 else f"{message.conversation_id}~{round_no}"
                self._emit(dataclasses.replace(message, conversation_id=cid, ts=time.time()))
            if not self.loop:
                return
            round_no += 1
            if self._stop_event.wait(self.loop_gap / self.speed):
                return

    def _run_waiting_for_agent(self) -> None:
        """Emit opening lines on the script's clock and later lines after the user's replies."""
        started = time.monotonic()
        pending = list(self._events)
        last_emit: dict[str, float] = {}
        released_at: dict[str, float] = {}
        seen_replies: dict[str, int] = {}
        while pending and not self.stopping:
            now = time.monotonic()
            with self._replies_lock:
                replies = dict(self._replies)
            for cid, count in replies.items():
                if count != seen_replies.get(cid, 0):
                    seen_replies[cid] = count
                    released_at[cid] = now
            next_due = math.inf
            heads: set[str] = set()
            for position, (offset, message) in enumerate(pending):
                cid = message.conversation_id
                if cid in heads:
                    continue  # one conversation's lines stay in order
                heads.add(cid)
                gate = self._gates.get(id(message), 0)
                if gate > replies.get(cid, 0):
                    continue
                if gate == 0:
                    due = started + offset / self.speed
                else:
                    after = max(released_at.get(cid, now), last_emit.get(cid, 0.0))
                    due = after + message.delay / self.speed
                if due <= now:
                    del pending[position]
                    last_emit[cid] = now
                    with self._replies_lock:
                        self._awaiting_reply.add(cid)
                    self._emit(dataclasses.replace(message, ts=time.time()))
                    next_due = now
                    break
                next_due = min(next_due, due)
            wait = 0.2 if next_due == math.inf else max(0.0, min(next_due - time.monotonic(), 0.2))
            if wait and self._stop_event.wait(wait):
                return


def _agent_gates(messages: Sequence[Message]) -> dict[int, int]:
    """For each customer message (by identity): the number of agent turns before it in its conversation."""
    gates: dict[int, int] = {}
    turns: dict[str, int] = {}
    previous: dict[str, str] = {}
    for message in messages:
        cid = message.conversation_id
        if message.speaker == "agent":
            if previous.get(cid) != "agent":
                turns[cid] = turns.get(cid, 0) + 1
        else:
            gates[id(message)] = turns.get(cid, 0)
        previous[cid] = message.speaker
    return gates



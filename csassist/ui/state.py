"""What the app knows about each conversation: plain Python, no widgets, so it is easy to test.

The app owns one :class:`Inbox`; widgets render from it and never keep their own copy of the truth.
Feedback bookkeeping lives here too: every suggestion slot that was shown gets exactly one outcome
(accepted / edited / rejected / ignored), and :meth:`ConversationState.undecided_slots` tells the
app which ones still need one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csassist.core.types import Analysis, CancelToken, Message, Passage, Suggestion


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
    decided: bool = False  # an outcome was recorded for it


@dataclass
class ConversationState:
    """One customer's conversation: messages, the latest analysis, and the current drafts."""

    conversation_id: str
    customer: str = ""
    messages: list[Message] = field(default_factory=list)
    unread: int = 0
    turn: int = 0  # number of customer messages so far
    analysis: Analysis | None = None
    analysed_turn: int = 0
    passages: list[Passage] = field(default_factory=list)
    slots: dict[int, SlotState] = field(default_factory=dict)
    slots_turn: int = 0  # the turn the slots answer
    generation: int = 0  # id of the newest generation run for this conversation
    generating: bool = False
    cancel: CancelToken | None = None
    picked: int | None = None  # slot accepted into the composer
    picked_text: str = ""  # its text at the moment it was accepted
    draft: str = ""  # composer text kept while another conversation is shown
    intent_correction: str | None = None
    waiting_since: float | None = None  # ts of the oldest unanswered customer message
    first_seen: int = 0  # arrival order, for the default sort

    @property
    def last_customer_message(self) -> Message | None:
        """The newest customer message (what the suggestions answer)."""
        for message in reversed(self.messages):
            if message.speaker == "customer":
                return message
        return None

    @property
    def intent_label(self) -> str:
        """The intent to show: the agent's correction wins over the model's guess."""
        if self.intent_correction:
            return self.intent_correction
        if self.analysis is None or not self.analysis.intent.top:
            return ""  # not analysed yet, or no intent model
        return self.analysis.intent.intent or "out of scope"

    @property
    def urgency_rank(self) -> int:
        """0 normal, 1 elevated, 2 urgent (0 before the first analysis)."""
        return self.analysis.urgency.rank if self.analysis else 0

    def undecided_slots(self) -> list[SlotState]:
        """Finished suggestions that were shown but have no outcome yet."""
        return [s for s in self.slots.values() if s.done and s.error is None and not s.decided and s.text]

    def history_before_last_customer(self) -> list[Message]:
        """Every message before the newest customer one (the history the engine gets)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].speaker == "customer":
                return list(self.messages[:index])
        return list(self.messages)


class Inbox:
    """All conversations by id, in arrival order."""

    def __init__(self) -> None:
        self.conversations: dict[str, ConversationState] = {}

    def get_or_create(self, conversation_id: str, customer: str | None) -> ConversationState:
        """The conversation for ``conversation_id``, created on its first message."""
        state = self.conversations.get(conversation_id)
        if state is None:
            state = ConversationState(conversation_id, customer=customer or "",
                                      first_seen=len(self.conversations))
            self.conversations[conversation_id] = state
        elif customer and not state.customer:
            state.customer = customer
        return state

    def ordered(self, by_urgency: bool, now: float) -> list[ConversationState]:
        """Conversations in display order: arrival order, or most urgent (then longest waiting) first."""
        items = list(self.conversations.values())
        if by_urgency:
            items.sort(key=lambda c: (-c.urgency_rank, -(now - c.waiting_since) if c.waiting_since else 0.0,
                                      c.first_seen))
        else:
            items.sort(key=lambda c: c.first_seen)
        return items

    def __len__(self) -> int:
        return len(self.conversations)

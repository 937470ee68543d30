"""What the app knows about each conversation: plain Python, no widgets, so it is easy to test.

The app owns one :class:`Inbox`; widgets render from it and never keep their own copy of the truth.
A conversation's messages, analysis and drafts live in its :class:`~csassist.ui.turn.Turn` state machine
(``conv.machine``), which is changed only through its methods; what is here besides is how the inbox
shows the conversation (name, unread count, the unsent composer text).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csassist.core.types import Analysis, Message, Passage
from csassist.ui.turn import SlotState, Turn

__all__ = ["ConversationState", "Inbox", "SlotState"]


@dataclass
class ConversationState:
    """One customer's conversation: its turn state machine plus what only the inbox needs."""

    conversation_id: str
    customer: str = ""
    unread: int = 0
    draft: str = ""  # composer text kept while another conversation is shown
    first_seen: int = 0  # arrival order, for the default sort
    machine: Turn = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.machine = Turn(self.conversation_id)

    # Read-only views of the machine, for the widgets, the benchmark and the tests.
    @property
    def messages(self) -> list[Message]:
        """Every message so far, oldest first."""
        return self.machine.messages

    @property
    def turn(self) -> int:
        """Number of customer messages so far."""
        return self.machine.number

    @property
    def analysed_turn(self) -> int:
        """The turn the current analysis belongs to."""
        return self.machine.analysed

    @property
    def analysis(self) -> Analysis | None:
        """The newest analysis."""
        return self.machine.analysis

    @property
    def passages(self) -> list[Passage]:
        """KB passages retrieved for the newest analysed turn."""
        return self.machine.passages

    @property
    def intent_correction(self) -> str | None:
        """The agent's intent for the analysed turn."""
        return self.machine.intent_correction

    @property
    def waiting_since(self) -> float | None:
        """ts of the oldest unanswered customer message."""
        return self.machine.waiting_since

    @property
    def last_customer_message(self) -> Message | None:
        """The newest customer message (what the suggestions answer)."""
        return self.machine.last_customer_message

    @property
    def intent_label(self) -> str:
        """The intent to show: the agent's correction wins over the model's guess."""
        if self.machine.analysis_error and self.machine.analysed != self.machine.number:
            return "analysis failed"
        return self.machine.intent_label

    @property
    def urgency_rank(self) -> int:
        """0 normal, 1 elevated, 2 urgent (0 before the first analysis)."""
        return self.machine.analysis.urgency.rank if self.machine.analysis else 0


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

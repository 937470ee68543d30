"""What the app offers its mixins (actions, message handlers, palette commands), declared without importing the app.

Why: :class:`~csassist.ui.actions.AgentActions` and :class:`~csassist.ui.handlers.MessageHandlers` are
mixins of :class:`~csassist.ui.app.CsassistApp` and need the app's state and helpers.  Importing
``app.py`` for their types (even under ``TYPE_CHECKING``) made ``app -> actions -> app`` an import
cycle, which also hid those modules from mypy.  :class:`AppHost` declares that surface once;
``CsassistApp`` provides it, and mypy checks that the two agree because the app inherits from the
mixins that inherit from this host.

At run time ``AppHost`` is a plain ``object`` base: it adds nothing to the app's MRO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - only type checkers see the declared surface
    from collections.abc import Callable
    from typing import TypeVar

    from textual.app import App
    from textual.widget import Widget

    from csassist.core.learn.feedback import FeedbackLog
    from csassist.ui.arrivals import ArrivalQueue
    from csassist.ui.recorder import Recorder
    from csassist.ui.state import ConversationState, Inbox
    from csassist.ui.widgets.status_bar import StatusBar
    from csassist.ui.workers import AssistantFactory, EngineWorkers

    W = TypeVar("W", bound=Widget)

    class AppHost(EngineWorkers, Recorder, App[int]):
        """The part of ``CsassistApp`` its mixins use."""

        factory: AssistantFactory | None
        inbox: Inbox
        selected: str | None
        by_urgency: bool
        sources: list[Any]
        outbox: Any
        feedback: FeedbackLog | None
        clock: Callable[[], float]
        send_as_note: bool | None
        arrivals: ArrivalQueue
        notice_log: list[str]
        shown_latencies: list[float]
        shown_latencies_selected: list[float]
        stage_timings: list[tuple[float, float]]

        @property
        def closing(self) -> bool:
            """True once the app is exiting."""
            ...

        @property
        def status(self) -> StatusBar:
            """The status bar widget."""
            ...

        @property
        def current(self) -> ConversationState | None:
            """The selected conversation."""
            ...

        def ui(self, widget_type: type[W]) -> W:
            """A widget of the main screen, also under a modal."""
            ...

        def after_frame(self, callback: Callable[..., object], *args: Any) -> None:
            """Run ``callback`` right after the main screen's next repaint."""

        def refresh_list(self) -> None:
            """Re-sync the inbox list soon."""

        def select(self, conversation_id: str) -> None:
            """Switch to a conversation."""

        def show_current(self) -> None:
            """Render the selected conversation."""

        def show_suggestions(self, conv: ConversationState) -> None:
            """Render ``conv``'s suggestion slots."""

        def draft_for(self, conv: ConversationState, *, force: bool = False, regenerate: bool = False) -> bool:
            """Start drafting replies for ``conv``'s analysed turn if it needs them."""
            ...

        def agent_replied(self, conversation_id: str) -> None:
            """Tell the sources that wait for the agent."""

else:
    AppHost = object

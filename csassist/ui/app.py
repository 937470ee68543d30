"""The terminal app: composes the widgets, owns the inbox state, binds the keys and draws the selection.

Build it with :func:`make_app` (the CLI and the tests use the same factory).  Engine calls run in the
workers of :mod:`csassist.ui.workers`; the app's mixins hold the rest: :mod:`csassist.ui.actions` (what the
keys do) and :mod:`csassist.ui.handlers` (what arrivals and engine results do, on the UI thread).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widget import Widget
from textual.widgets import Footer

from csassist import paths
from csassist.core.engine import Engine
from csassist.core.learn.feedback import FeedbackLog, open_feedback_log
from csassist.settings import Settings, load_settings
from csassist.ui import messages as m
from csassist.ui.actions import AgentActions
from csassist.ui.arrivals import ArrivalQueue
from csassist.ui.commands import CsassistCommands
from csassist.ui.handlers import MessageHandlers
from csassist.ui.keymap import bindings_of, check_keymap
from csassist.ui.recorder import Recorder
from csassist.ui.render import NOTICE_MAX_CHARS, clean
from csassist.ui.screens.handover import HandoverScreen
from csassist.ui.screens.help import HelpScreen
from csassist.ui.screens.intent import IntentScreen
from csassist.ui.screens.kb_search import KBSearchScreen
from csassist.ui.screens.reject import RejectScreen
from csassist.ui.screens.stats import StatsScreen
from csassist.ui.state import ConversationState, Inbox
from csassist.ui.themes import APP_VARIABLES, DEFAULT_THEME, FALLBACK_THEME, load_themes
from csassist.ui.widgets.assist_panel import AssistPanel
from csassist.ui.widgets.composer import Composer
from csassist.ui.widgets.conversation_list import ConversationList
from csassist.ui.widgets.status_bar import StatusBar
from csassist.ui.widgets.suggestions import SuggestionCard, SuggestionList
from csassist.ui.widgets.transcript import Transcript
from csassist.ui.workers import AssistantFactory, EngineWorkers, default_factory, with_backend

PICK = Binding.Group("Use 1-3", compact=True)
W = TypeVar("W", bound=Widget)
#: Actions on plain character keys: inactive (and hidden from the footer) while the composer has focus.
SINGLE_KEY_ACTIONS = frozenset({"accept", "edit", "reject", "regenerate", "next_conversation",
                                "previous_conversation", "kb_search", "correct_intent", "toggle_sort", "stats",
                                "help", "drop_unsupported", "handover"})


class CsassistApp(AgentActions, MessageHandlers, EngineWorkers, Recorder, App[int]):
    """csassist's main window: inbox · transcript + suggestions + composer · assist panel."""

    CSS_PATH = "app.tcss"
    TITLE = "csassist"
    COMMANDS = App.COMMANDS | {CsassistCommands}
    BINDINGS = [
        Binding("1", "accept(0)", "Use 1", id="suggestion.use_1", group=PICK, tooltip="Put suggestion 1 in the composer"),
        Binding("2", "accept(1)", "Use 2", id="suggestion.use_2", group=PICK, tooltip="Put suggestion 2 in the composer"),
        Binding("3", "accept(2)", "Use 3", id="suggestion.use_3", group=PICK, tooltip="Put suggestion 3 in the composer"),
        Binding("e", "edit", "Edit", id="composer.edit", tooltip="Edit the reply (Esc returns to shortcuts)"),
        Binding("ctrl+s", "send", "Send", id="composer.send", priority=True, tooltip="Send the reply in the composer"),
        Binding("x", "reject", "Reject", id="suggestion.reject", tooltip="Reject the chosen suggestion with a reason"),
        Binding("r", "regenerate", "Regenerate", id="suggestion.regenerate", tooltip="Draft new suggestions"),
        Binding("n", "next_conversation", "Next", id="conversation.next", tooltip="Next conversation"),
        Binding("p", "previous_conversation", "Prev", id="conversation.previous", tooltip="Previous conversation"),
        Binding("slash", "kb_search", "KB", id="kb.search", tooltip="Search the knowledge base"),
        Binding("i", "correct_intent", "Intent", id="intent.correct", tooltip="Correct the detected intent"),
        Binding("u", "toggle_sort", "Sort", id="conversation.sort", show=False, tooltip="Sort by urgency / arrival"),
        Binding("s", "stats", "Stats", id="app.stats", show=False, tooltip="Acceptance statistics"),
        Binding("d", "drop_unsupported", "Drop unsupported", id="suggestion.drop_unsupported", show=False,
                tooltip="Put the chosen suggestion (or 1) in the composer without the sentences the KB does not support"),
        Binding("h", "handover", "Hand-over", id="conversation.handover", show=False,
                tooltip="Hand-over summary: goal, facts, what was promised, what is open"),
        Binding("ctrl+o", "toggle_note", "Note/Reply", id="composer.private_note", show=False,
                tooltip="Post sent text as a private note for review in the helpdesk, or as a reply"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="All keys and what they do"),
    ]

    def __init__(self, settings: Settings, *, assistant: Engine | None = None,
                 assistant_factory: AssistantFactory | None = None,
                 sources: Iterable[Any] = (), outbox: Any = None, feedback: FeedbackLog | None = None,
                 clock: Callable[[], float] = time.time, tick: bool = True, theme_name: str | None = None,
                 theme_dirs: Iterable[Path] | None = None, source_label: str = "", notices: Iterable[str] = ()) -> None:
        super().__init__()
        self.settings = settings
        self.assistant: Engine | None = assistant
        self.factory = assistant_factory
        self.sources = list(sources)
        self.outbox, self.feedback, self.clock, self.tick = outbox, feedback, clock, tick
        self.inbox = Inbox()
        self.selected: str | None = None
        self.by_urgency = False
        self._list_dirty = False
        self.arrivals = ArrivalQueue()  # messages from source threads, taken in time-boxed batches
        self.source_label = source_label
        self.send_as_note: bool | None = None  # None: [chatwoot] private_notes decides; ctrl+o sets it
        self.shown_latencies: list[float] = []  # arrival -> intent on screen (inbox row or panel), ms
        self.shown_latencies_selected: list[float] = []  # ... for the selected conversation (intent + KB)
        self.stage_timings: list[tuple[float, float]] = []  # (analyse ms, retrieve ms) per shown analysis
        self.notice_log: list[str] = []  # every engine notice, also after its toast expired (tests read it)
        self.notices = list(notices) + list(settings.warnings)
        keys = check_keymap(settings.ui.keys, key_scopes())
        self.checked_keymap = keys.keymap
        self.notices += keys.problems
        themes, problems = load_themes(theme_dirs or (paths.bundled_themes_dir(), paths.user_themes_dir()))
        for theme in themes:
            self.register_theme(theme)
        self.notices += [f"Theme file skipped: {p}" for p in problems]
        wanted = theme_name or settings.ui.theme
        if wanted not in self.available_themes:
            fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else FALLBACK_THEME
            self.notices.append(f"Theme '{wanted}' is not available; using {fallback}")
            wanted = fallback
        self.theme = wanted

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While typing in the composer, single-key shortcuts type text: hide them from the footer."""
        return not (action in SINGLE_KEY_ACTIONS and isinstance(self.focused, Composer))

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """csassist's own theme variables, so any Textual theme works with app.tcss."""
        return dict(APP_VARIABLES)

    def compose(self) -> ComposeResult:
        """The whole layout at once; content arrives later."""
        with Horizontal(id="main"):
            yield ConversationList(id="conversations")
            with Vertical(id="center"):
                yield Transcript(id="transcript")
                yield SuggestionList(id="suggestions")
                yield Composer(id="composer")
            yield AssistPanel(id="assist")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Keymap, notices, engine loading and the message sources."""
        self.set_keymap(self.checked_keymap)
        self.query_one("#conversations").border_title = "Inbox"
        self.query_one("#transcript").border_title = "Conversation"
        self.query_one("#composer").border_title = "Reply (e to edit, ctrl+s to send)"
        self.query_one("#assist").border_title = "Assist"
        self.status.set_source(self.source_label)
        for notice in self.notices:
            self.notify(notice, severity="warning", timeout=8, markup=False)
        if self.assistant is not None:
            self._engine_ready(self.assistant)
        else:
            self.status.set_engine({"engine": "loading…"})
            self.start_loading(self.factory or default_factory, self.settings)
        if self.tick:
            self.set_interval(1.0, self._sync_list)
        for source in self.sources:
            try:
                source.start(self.ingest)
            except Exception as exc:  # noqa: BLE001 - a dead feed is shown, the app keeps working
                self.notify(f"Message source failed: {exc}", severity="error", timeout=30, markup=False)
        self.ui(ConversationList).focus()
        gc.freeze()  # start-up objects never die: keep them out of full collections (pauses of ~100 ms)

    def on_unmount(self) -> None:
        """Stop the feeds and any drafting; write what is still queued plus an ``ignored`` outcome for every
        suggestion shown but not decided (the outbox is closed by run_app after this)."""
        for source in self.sources:
            source.stop()
        now = self.clock()
        self.flush([event for conv in self.inbox.conversations.values() for event in conv.machine.close(now)])

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every toast is literal text (``markup`` is ignored): notices quote config values, file names,
        theme errors, customer names and engine exceptions, and one ``[/]`` in them must not crash the app."""
        super().notify(clean(message, max_chars=NOTICE_MAX_CHARS), title=clean(title, max_chars=200),
                       severity=severity, timeout=timeout, markup=False)

    def ui(self, widget_type: type[W]) -> W:
        """A widget of the main screen, also while a modal (help, reject...) is on top."""
        return self.screen_stack[0].query_one(widget_type)

    def after_frame(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback`` right after the main screen's next repaint (latency probes use it).

        ``call_after_refresh`` would also wait for every message queued before it (a burst of streamed
        tokens), which is not what the agent sees; the screen's own post-repaint hook is exact.
        """
        if self.screen_stack:
            probe: Callable[[], None] = partial(callback, *args)  # type: ignore[assignment]
            self.screen_stack[0]._invoke_later(probe, self)

    @property
    def closing(self) -> bool:
        """True once the app is exiting: late worker messages are then ignored."""
        return self._exit or not self._running or not self.screen_stack

    @property
    def status(self) -> StatusBar:
        """The status bar widget."""
        return self.ui(StatusBar)

    @property
    def current(self) -> ConversationState | None:
        """The selected conversation."""
        return self.inbox.conversations.get(self.selected or "")

    # -- drafting ----------------------------------------------------------------------------
    def draft_for(self, conv: ConversationState, *, force: bool = False, regenerate: bool = False) -> bool:
        """Start drafting replies for ``conv``'s analysed turn if it needs them (or ``force``/``regenerate``).

        One conversation drafts at a time (the model is the scarce resource): the others are stopped.
        False when there was nothing to draft.
        """
        if self.assistant is None:
            return False
        now = self.clock()
        request, events = conv.machine.regenerate(now) if regenerate else conv.machine.start_drafting(now, force=force)
        self.record(events)
        if request is None:
            return False
        for other in self.inbox.conversations.values():
            if other is not conv and other.machine.drafting:
                other.machine.stop_drafting()
        self.start_generation(request)
        if conv.conversation_id == self.selected:
            self.show_suggestions(conv)
        return True

    def agent_replied(self, conversation_id: str) -> None:
        """Tell the sources that can wait for the agent (the demo customer answers once we have replied)."""
        for source in self.sources:
            replied = getattr(source, "agent_replied", None)
            if callable(replied):
                replied(conversation_id)

    # -- showing -----------------------------------------------------------------------------
    def refresh_list(self) -> None:
        """Ask for an inbox re-sync; bursts of messages coalesce into one sync per queue pass."""
        if not self._list_dirty:
            self._list_dirty = True
            self.call_later(self._sync_list)

    def _sync_list(self) -> None:
        """Re-sync the inbox list (also every second, for the waiting times)."""
        self._list_dirty = False
        if self.closing:
            return
        ordered = self.inbox.ordered(self.by_urgency, self.clock())
        self.ui(ConversationList).sync(ordered, self.selected, self.clock())

    def show_current(self) -> None:
        """Render the selected conversation into transcript, assist panel and suggestions."""
        conv = self.current
        if conv is None:
            return
        self.ui(Transcript).show(conv.conversation_id, conv.messages)
        self.ui(AssistPanel).show(conv.analysis, conv.passages, conv.intent_correction)
        self.show_suggestions(conv)

    def show_suggestions(self, conv: ConversationState) -> None:
        """Render ``conv``'s suggestion slots (and which one is in the composer)."""
        self.ui(SuggestionList).show(conv.machine.slots, conv.machine.picked)

    def select(self, conversation_id: str) -> None:
        """Switch to a conversation, keeping the unsent draft of the one we leave."""
        if conversation_id == self.selected or conversation_id not in self.inbox.conversations:
            return
        composer = self.ui(Composer)
        if self.current is not None:
            self.current.draft = composer.text
        self.selected = conversation_id
        conv = self.inbox.conversations[conversation_id]
        conv.unread = 0
        composer.set_reply(conv.draft)
        self.show_current()
        self.refresh_list()
        if not self.draft_for(conv):  # not analysed yet: it is the open one now, so it is analysed next
            self.analysis_backlog.promote(conversation_id)

    def on_conversation_list_chosen(self, event: ConversationList.Chosen) -> None:
        """Cursor moves and clicks in the inbox."""
        if self.closing:
            return
        self.select(event.conversation_id)

    def on_suggestion_card_clicked(self, event: SuggestionCard.Clicked) -> None:
        """A click on a suggestion accepts it."""
        self.action_accept(event.slot)


def key_scopes() -> list[list[Binding]]:
    """Groups of bindings that can be active together, for :func:`~csassist.ui.keymap.check_keymap`.

    On the main screen the app's bindings meet the focused widget's (composer or inbox list); on a modal
    screen only its own bindings and the app's priority ones are live.
    """
    own = bindings_of(CsassistApp.BINDINGS)
    priority = [b for b in own if b.priority]
    modals = (HelpScreen, IntentScreen, KBSearchScreen, RejectScreen, StatsScreen, HandoverScreen)
    return [own + bindings_of(Composer.BINDINGS), own + bindings_of(ConversationList.BINDINGS),
            *(bindings_of(screen.BINDINGS) + priority for screen in modals)]


def fan_out(sinks: list[Callable[[dict[str, Any]], object]]) -> Callable[[dict[str, Any]], None]:
    """One outbox ``record_sink`` that calls each sink; a failing one does not stop the others."""

    def call_all(record: dict[str, Any]) -> None:
        errors = []
        for sink in sinks:
            try:
                sink(record)
            except Exception as exc:  # noqa: BLE001 - reported together below
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors:
            raise RuntimeError("; ".join(errors))

    return call_all


def make_app(settings: Settings | None = None, **kwargs: Any) -> CsassistApp:
    """The one factory used by the CLI, the tests, the snapshots and the benchmark."""
    return CsassistApp(settings or load_settings(), **kwargs)


def run_app(args: argparse.Namespace) -> int:
    """``csassist`` with no subcommand: open the app on the demo or the given feeds."""
    from csassist.ui.intake import build_intake

    settings = load_settings()
    if args.backend:
        settings = with_backend(settings, args.backend)
    intake = build_intake(args, settings)
    feedback = open_feedback_log(settings, on_problem=intake.relay)
    sinks: list[Callable[[dict[str, Any]], object]] = []
    if feedback.is_team:  # the team store also keeps a redacted copy of every sent reply
        sinks.append(feedback.record_outbox)
    if intake.chatwoot is not None:  # ... and Chatwoot gets it as the agent's reply or private note
        sinks.append(intake.chatwoot.sender.submit)
    intake.outbox.record_sink = fan_out(sinks) if sinks else None
    app = make_app(settings, assistant_factory=default_factory, sources=intake.sources, outbox=intake.outbox,
                   feedback=feedback, theme_name=args.theme, source_label=intake.label,
                   notices=intake.notices + intake.relay.early)

    def relay(text: str) -> None:
        app.post_message(m.EngineNotice(text, timeout=20))

    intake.relay.target = relay
    try:
        app.run()
    finally:
        intake.outbox.close()
        feedback.close()
    return app_exit_code(app)


def app_exit_code(app: App[Any]) -> int:
    """The process exit code after ``app.run()``: Textual's return code (1 after an unhandled exception,
    whose traceback it has printed), 0 for a normal quit."""
    return app.return_code or 0

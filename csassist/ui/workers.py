"""Everything that calls the engine, each in a thread worker: the UI thread never waits on a model.

The functions here run *off* the UI thread.  They never touch a widget: results go back as the
small messages of :mod:`csassist.ui.messages` (``post_message`` is thread-safe), and every loop
checks both the worker's ``is_cancelled`` and the :class:`CancelToken` the engine honours, so a
new customer message stops stale drafts within one token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.worker import get_current_worker

from csassist.core.types import Analysis, CancelToken, Message, Passage
from csassist.ui.messages import (
    AnalysisReady,
    AssistantReady,
    EngineNotice,
    GenerationFinished,
    GeneratorReady,
    SendFailed,
    SuggestionStreamed,
)

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.engine import Engine
    from csassist.core.io.outbox import Outbox
    from csassist.core.learn.feedback import FeedbackEvent, FeedbackLog
    from csassist.settings import Settings

#: Builds the engine for some settings (tests pass one that returns a fake).
AssistantFactory = Callable[["Settings"], "Engine"]
_ANALYSIS_LOCK = threading.Lock()


def default_factory(settings: Settings) -> Engine:
    """The real engine, built by the workspace (imported here so the app draws before torch loads)."""
    from csassist.core.workspace import Workspace

    return Workspace(settings).assistant()


class EngineWorkers:
    """Mixin for the App: starts the workers; the message handlers live in the app."""

    assistant: Engine | None
    settings: Settings
    _persist_lock = threading.Lock()

    # These come from textual.app.App.
    post_message: Callable[..., bool]
    run_worker: Callable[..., Any]

    def start_loading(self, factory: AssistantFactory, settings: Settings, reindex: bool = False) -> None:
        """Load (or reload) the engine in a worker; build the index first when it is missing."""
        self.run_worker(partial(self._load_engine, factory, settings, reindex), thread=True, exclusive=True,
                        group="engine", name="load engine", exit_on_error=False)

    def _load_engine(self, factory: AssistantFactory, settings: Settings, reindex: bool) -> None:
        """Worker body: reindex if asked or needed, then construct the engine (the real one in two phases)."""
        from csassist.core.errors import IndexUnusableError
        from csassist.core.workspace import Workspace, warm_up

        workspace = Workspace(settings)
        real = factory is default_factory

        def make() -> Engine:
            # Phase 1 of the real engine leaves the reply model out: intents and KB answers in seconds.
            return workspace.assistant(generator=None) if real else factory(settings)

        try:
            if reindex or workspace.index_missing():
                what = "Re-indexing" if reindex else "First run: indexing"
                self.post_message(EngineNotice(f"{what} the knowledge base in {workspace.kb_dir}…", timeout=15))
                self.post_message(EngineNotice(workspace.build_index().summary(), timeout=8))
            try:
                assistant = make()
            except IndexUnusableError as exc:
                self.post_message(EngineNotice(f"The index is unusable ({exc}); rebuilding it…", timeout=15))
                self.post_message(EngineNotice(workspace.build_index().summary(), timeout=8))
                assistant = make()
        except Exception as exc:  # noqa: BLE001 - shown to the agent, the app keeps running
            self.post_message(AssistantReady(None, error=f"{type(exc).__name__}: {exc}"))
            return
        warm_up(assistant)
        self.post_message(AssistantReady(assistant, warnings=tuple(assistant.warnings)))
        if real and settings.generation.backend.strip().lower() != "extractive":
            # Phase 2: intents, KB answers and the extractive reply already work; now the slow model.
            try:
                generator = workspace.load_generator()
            except Exception as exc:  # noqa: BLE001 - no model means extractive suggestions only
                self.post_message(GeneratorReady(assistant, None, f"{exc}"))
                return
            self.post_message(GeneratorReady(assistant, generator))

    def start_analysis(self, cid: str, turn: int, message: Message, history: list[Message], arrived: float) -> None:
        """Queue the analysis of a conversation's newest customer turn (a newer turn replaces a queued one).

        One thread worker drains the queue in arrival order.  Running analyses one at a time is faster
        than one thread per message: on a busy CPU, concurrent encoder calls slowed each other ~10x.
        """
        with _ANALYSIS_LOCK:
            queue = self.__dict__.setdefault("_analysis_queue", {})
            queue[cid] = (turn, message, history, arrived)  # replacing keeps the conversation's place
            start = not self.__dict__.get("_analysis_running", False)
            self.__dict__["_analysis_running"] = True
        if start:
            self.run_worker(self._analysis_loop, thread=True, group="analyse", name="analysis", exit_on_error=False)

    def _analysis_loop(self) -> None:
        """Worker body: take the oldest queued conversation, analyse + retrieve, post; exit when idle."""
        worker = get_current_worker()
        queue: dict[str, tuple[int, Message, list[Message], float]] = self.__dict__.setdefault("_analysis_queue", {})
        while True:
            with _ANALYSIS_LOCK:
                if not queue or worker.is_cancelled:
                    self.__dict__["_analysis_running"] = False  # the next start_analysis starts a new loop
                    return
                cid = next(iter(queue))
                turn, message, history, arrived = queue.pop(cid)
            assistant = self.assistant
            if assistant is None:  # the engine is being reloaded: the ready handler re-queues the turn
                continue
            t0 = time.perf_counter()
            analysis: Analysis = assistant.analyze(message.text, history)
            t1 = time.perf_counter()
            passages: list[Passage] = list(assistant.retrieve(message.text, self.settings.retrieval.top_k,
                                                                    history))
            t2 = time.perf_counter()
            self.post_message(AnalysisReady(cid, turn, analysis, passages, (t1 - t0) * 1000, (t2 - t1) * 1000,
                                            arrived))

    def start_generation(self, cid: str, turn: int, generation: int, message: Message, history: list[Message],
                         analysis: Analysis, passages: list[Passage], token: CancelToken, seed: int) -> None:
        """Stream suggestions for one turn; one generation at a time (the model is the scarce resource)."""
        if self.assistant is None:
            return
        self.run_worker(
            partial(self._generate, self.assistant, cid, turn, generation, message, history, analysis, passages,
                    token, seed),
            thread=True, exclusive=True, group="generate", name=f"suggest {cid}", exit_on_error=False)

    def _generate(self, assistant: Engine, cid: str, turn: int, generation: int, message: Message,
                  history: list[Message], analysis: Analysis, passages: list[Passage], token: CancelToken,
                  seed: int) -> None:
        """Worker body: forward every SuggestionUpdate as a replaceable message until cancelled."""
        worker = get_current_worker()
        start = time.perf_counter()
        first: dict[int, float] = {}
        error: str | None = None
        try:
            for update in assistant.suggest(message, history, analysis, passages, token, seed=seed):
                if worker.is_cancelled or token.cancelled:
                    token.cancel()
                    break
                if update.text and update.slot not in first:
                    first[update.slot] = (time.perf_counter() - start) * 1000
                self.post_message(SuggestionStreamed(cid, turn, generation, update, first.get(update.slot)))
        except Exception as exc:  # noqa: BLE001 - a failed backend is a message, not a crash
            error = f"{type(exc).__name__}: {exc}"
        self.post_message(GenerationFinished(cid, turn, generation, error))

    def start_persist(self, outbox: Outbox | None, feedback: FeedbackLog | None,
                      send: tuple[str, Message, dict[str, Any]] | None, events: list[FeedbackEvent]) -> None:
        """Append the sent reply to the outbox (flushed) and the feedback events to the log."""
        if send is None and not events:
            return
        self.run_worker(partial(self._persist, outbox, feedback, send, events), thread=True, group="persist",
                        name="persist", exit_on_error=False)

    def _persist(self, outbox: Outbox | None, feedback: FeedbackLog | None,
                 send: tuple[str, Message, dict[str, Any]] | None, events: list[FeedbackEvent]) -> None:
        """Worker body: outbox first (the customer's reply matters most), then feedback."""
        with self._persist_lock:
            if send is not None and outbox is not None:
                cid, message, meta = send
                try:
                    outbox.send(cid, message.text, meta=meta)
                except Exception as exc:  # noqa: BLE001 - the reply goes back to the composer
                    self.post_message(SendFailed(cid, message, f"{type(exc).__name__}: {exc}"))
                    return
            for event in events:
                if feedback is not None:
                    try:
                        feedback.record(event)
                    except Exception as exc:  # noqa: BLE001 - losing one log line must not stop the agent
                        self.post_message(EngineNotice(f"Feedback not logged: {exc}", severity="warning"))



def with_backend(settings: Settings, backend: str) -> Settings:
    """A copy of ``settings`` using another generation backend (see ``Workspace.with_backend``)."""
    from csassist.core.workspace import Workspace

    return Workspace(settings).with_backend(backend).settings

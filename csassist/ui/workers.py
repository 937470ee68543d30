"""Everything that calls the engine, each in a thread worker: the UI thread never waits on a model.

The functions here run *off* the UI thread.  They never touch a widget: results go back as the
small messages of :mod:`csassist.ui.messages` (``post_message`` is thread-safe), and every loop
checks both the worker's ``is_cancelled`` and the :class:`CancelToken` the engine honours, so a
new customer message stops stale drafts within one token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import work
from textual.worker import get_current_worker

from csassist.core.types import Analysis, Passage
from csassist.ui.backlog import Backlog
from csassist.ui.messages import (
    AnalysisFailed,
    AnalysisReady,
    AssistantReady,
    EngineNotice,
    GenerationFinished,
    GeneratorReady,
    SuggestionStreamed,
)
from csassist.ui.turn import AnalysisRequest, DraftRequest

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.engine import Engine
    from csassist.settings import Settings

#: Builds the engine for some settings (tests pass one that returns a fake).
AssistantFactory = Callable[["Settings"], "Engine"]


def default_factory(settings: Settings) -> Engine:
    """The real engine, built by the workspace (imported here so the app draws before torch loads)."""
    from csassist.core.workspace import Workspace

    return Workspace(settings).assistant()


class EngineWorkers:
    """Mixin for the App: starts the workers; the handlers of their messages live in :mod:`csassist.ui.handlers`."""

    assistant: Engine | None
    settings: Settings

    # These come from textual.app.App.
    post_message: Callable[..., bool]
    run_worker: Callable[..., Any]

    @work(thread=True, exclusive=True, group="engine", name="load engine", exit_on_error=False,
          description="load the engine")
    def start_loading(self, factory: AssistantFactory, settings: Settings, reindex: bool = False) -> None:
        """Load (or reload) the engine in a worker: reindex if asked or needed, then construct the engine
        (the real one in two phases)."""
        from csassist.core.errors import IndexUnusableError
        from csassist.core.workspace import Workspace, warm_up

        workspace = Workspace(settings)
        real = factory is default_factory

        def make() -> Engine:
            # Phase 1 of the real engine leaves the reply model out: intents and KB answers in seconds.
            return workspace.assistant(generator=None) if real else factory(settings)

        try:
            missing = workspace.index_missing()
            if reindex or missing or workspace.index_outdated():
                what = ("Re-indexing" if reindex else "First run: indexing" if missing
                        else "The index was written by an older csassist: re-indexing")
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

    @property
    def analysis_backlog(self) -> Backlog[str, tuple[AnalysisRequest, float]]:
        """Conversations waiting for analysis: one entry each (a newer turn replaces a queued one)."""
        backlog: Backlog[str, tuple[AnalysisRequest, float]] | None = self.__dict__.get("_analysis_backlog")
        if backlog is None:
            backlog = self.__dict__["_analysis_backlog"] = Backlog()
        return backlog

    def start_analysis(self, request: AnalysisRequest, arrived: float, *, first: bool = False) -> None:
        """Queue the analysis of a conversation's newest customer turn (a newer turn replaces a queued one).

        One thread worker drains the queue in arrival order, except that the open conversation goes
        ``first``: its drafts start as soon as its analysis is posted, so it must not wait behind a burst
        of other conversations.  Running analyses one at a time is faster than one thread per message:
        on a busy CPU, concurrent encoder calls slowed each other ~10x.
        """
        if self.analysis_backlog.put(request.conversation_id, (request, arrived), first=first):
            self._analysis_loop()

    @work(thread=True, exclusive=True, group="analyse", name="analysis", exit_on_error=False,
          description="analyse queued customer messages")
    def _analysis_loop(self) -> None:
        """Worker body: take the oldest queued conversation, analyse + retrieve, post; exit when idle.

        One message that makes the engine raise is reported (``AnalysisFailed``) and the loop goes on
        with the next one; the backlog is released in ``finally`` so even an escaping error cannot
        leave analysis switched off.
        """
        worker = get_current_worker()
        backlog = self.analysis_backlog
        try:
            while not worker.is_cancelled:
                item = backlog.take()
                if item is None:
                    return
                _cid, (request, arrived) = item
                self._analyse_one(request, arrived)
        finally:
            backlog.release()

    def _analyse_one(self, request: AnalysisRequest, arrived: float) -> None:
        """Analyse + retrieve one message and post the result (or the failure: it is shown, not swallowed)."""
        assistant = self.assistant
        if assistant is None:  # the engine is being reloaded: the ready handler re-queues the turn
            return
        try:
            t0 = time.perf_counter()
            analysis: Analysis = assistant.analyze(request.message.text, list(request.history))
            t1 = time.perf_counter()
            passages: list[Passage] = list(assistant.retrieve(request.message.text, self.settings.retrieval.top_k,
                                                              list(request.history)))
            t2 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - one bad message fails alone; the next is analysed
            self.post_message(AnalysisFailed(request.conversation_id, request.turn, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(AnalysisReady(request.conversation_id, request.turn, analysis, passages, (t1 - t0) * 1000,
                                        (t2 - t1) * 1000, arrived))

    @work(thread=True, exclusive=True, group="generate", name="suggest", exit_on_error=False,
          description="stream suggestions")
    def start_generation(self, request: DraftRequest) -> None:
        """Stream suggestions for one turn; one run at a time (the model is the scarce resource).

        Every SuggestionUpdate is forwarded as a replaceable message until the run is cancelled (worker
        cancelled by a newer run, or the request's CancelToken by the turn); a failing backend ends the
        run with an error in ``GenerationFinished`` instead of killing the worker.
        """
        worker = get_current_worker()
        assistant = self.assistant
        cid, turn, generation, token = request.conversation_id, request.turn, request.generation, request.cancel
        if assistant is None:  # the engine is being reloaded: the turn drafts again once it is back
            self.post_message(GenerationFinished(cid, turn, generation, None))
            return
        start = time.perf_counter()
        first: dict[int, float] = {}
        error: str | None = None
        try:
            for update in assistant.suggest(request.message, list(request.history), request.analysis,
                                            list(request.passages), token, seed=request.seed):
                if worker.is_cancelled or token.cancelled:
                    token.cancel()
                    break
                if update.text and update.slot not in first:
                    first[update.slot] = (time.perf_counter() - start) * 1000
                self.post_message(SuggestionStreamed(cid, turn, generation, update, first.get(update.slot)))
        except Exception as exc:  # noqa: BLE001 - a failed backend is a message, not a crash
            error = f"{type(exc).__name__}: {exc}"
        self.post_message(GenerationFinished(cid, turn, generation, error))



def with_backend(settings: Settings, backend: str) -> Settings:
    """A copy of ``settings`` using another generation backend (see ``Workspace.with_backend``)."""
    from csassist.core.workspace import Workspace

    return Workspace(settings).with_backend(backend).settings

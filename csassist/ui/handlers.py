"""What the app does with the messages that reach the UI thread: arrivals from the sources, engine results.

A mixin of :class:`csassist.ui.app.CsassistApp` (kept apart so app.py stays about composing and wiring).
Sources call :meth:`MessageHandlers.ingest` from their own threads; the workers of
:mod:`csassist.ui.workers` post the messages of :mod:`csassist.ui.messages`.  Each ``on_*`` handler runs
on the UI thread, lets the conversation's :class:`~csassist.ui.turn.Turn` decide whether the message
still matters (a newer customer message makes older results stale), then redraws.  Textual finds these
handlers through the app's MRO, exactly as if they were written in the app class.
"""

from __future__ import annotations

import gc
import time

from textual.worker import Worker, WorkerState

from csassist.core.engine import Engine
from csassist.core.types import Message
from csassist.ui import messages as m
from csassist.ui.host import AppHost
from csassist.ui.state import ConversationState
from csassist.ui.widgets.composer import Composer


class MessageHandlers(AppHost):
    """The app's ``on_*`` handlers for arrivals and engine results (and the thread-safe ``ingest``)."""

    def ingest(self, message: Message) -> None:
        """Thread-safe entry for every source: queue the message; the UI thread takes arrivals in batches."""
        if self.arrivals.put(message):
            self.post_message(m.ArrivalsPending())

    def on_arrivals_pending(self, _event: m.ArrivalsPending) -> None:
        """Handle queued arrivals for one time slice, then let queued keys and repaints go first."""
        for message, arrived in self.arrivals.take():
            self.on_customer_message_arrived(m.CustomerMessageArrived(message, arrived))
        if self.arrivals.stay_awake():
            self.post_message(m.ArrivalsPending())

    def _engine_ready(self, assistant: Engine) -> None:
        """Use ``assistant`` from now on and analyse whatever arrived while it was loading."""
        self.assistant = assistant
        if self.feedback is not None:  # every event names the models that drafted it
            self.feedback.model_versions = {k: v for k, v in assistant.describe().as_dict().items()
                                            if k in ("generator", "embedder", "intent_model", "index")}
        gc.freeze()  # the engine's objects (models, index) live as long as the app
        self.status.set_engine(assistant.describe().as_dict())
        for conv in self.inbox.conversations.values():
            self._analyse_latest(conv, time.perf_counter())

    def on_assistant_ready(self, event: m.AssistantReady) -> None:
        """The loader worker finished."""
        if event.assistant is None:
            self.status.set_engine({"engine": "unavailable"})
            self.notify(f"The engine could not start: {event.error}", severity="error", timeout=30, markup=False)
            return
        for warning in event.warnings:
            self.notify(warning, severity="warning", timeout=10, markup=False)
        self._engine_ready(event.assistant)

    def on_generator_ready(self, event: m.GeneratorReady) -> None:
        """The reply model arrived after the rest of the engine: attach it, redraft the open turn."""
        if event.assistant is not self.assistant or self.closing:
            return
        if event.generator is None:
            self.notify(f"Reply model unavailable ({event.error}); extractive suggestions only",
                        severity="warning", timeout=10, markup=False)
            return
        event.assistant.attach_generator(event.generator)
        info = event.assistant.describe()
        self.status.set_engine(info.as_dict())
        self.notify(f"Reply model ready: {info.generator}", timeout=4, markup=False)
        conv = self.current
        if conv is not None and conv.machine.picked is None and not any(slot > 0 for slot in conv.machine.slots):
            self.draft_for(conv, force=True)

    def on_engine_notice(self, event: m.EngineNotice) -> None:
        """Progress and problems from workers."""
        self.notice_log.append(event.text)
        self.notify(event.text, severity=event.severity, timeout=event.timeout, markup=False)  # type: ignore[arg-type]

    def on_customer_message_arrived(self, event: m.CustomerMessageArrived) -> None:
        """Store the message (the turn decides what it supersedes), start its analysis, refresh what is visible."""
        if self.closing:
            return
        msg = event.message
        conv = self.inbox.get_or_create(msg.conversation_id, msg.customer)
        self.record(conv.machine.receive(msg, self.clock()))
        if msg.speaker == "customer":
            if msg.conversation_id != self.selected:
                conv.unread += 1
            if self.assistant is not None:
                self._analyse_latest(conv, event.arrived)
        if self.selected is None:
            self.select(conv.conversation_id)
        elif conv.conversation_id == self.selected:
            self.show_current()
        self.refresh_list()

    def _analyse_latest(self, conv: ConversationState, arrived: float) -> None:
        """Start the analysis worker for the newest customer message, unless it is analysed already.

        The open conversation's message goes to the front of the queue: its drafts start the moment its
        analysis is in (:meth:`on_analysis_ready`), so the agent sees tokens without waiting for a burst.
        """
        request = conv.machine.analysis_request()
        if request is not None:
            self.start_analysis(request, arrived, first=conv.conversation_id == self.selected)

    def on_analysis_ready(self, event: m.AnalysisReady) -> None:
        """Show intent + KB at once (before any suggestion), then draft replies if it is on screen."""
        if self.closing:
            return
        conv = self.inbox.conversations.get(event.conversation_id)
        if conv is None or not conv.machine.analysed_as(event.turn, event.analysis, event.passages):
            return  # a newer customer message is being analysed
        self.stage_timings.append((event.analyse_ms, event.retrieve_ms))
        self.status.set_latency("analyse", event.analyse_ms)
        self.status.set_latency("retrieve", event.retrieve_ms)
        self.refresh_list()
        selected = conv.conversation_id == self.selected
        if selected:
            self.show_current()
            self.draft_for(conv)
        self.after_frame(self._record_shown, event.arrived, selected)

    def on_analysis_failed(self, event: m.AnalysisFailed) -> None:
        """One message the engine could not analyse: say so (inbox row and a notification); others go on."""
        if self.closing:
            return
        conv = self.inbox.conversations.get(event.conversation_id)
        if conv is None or not conv.machine.analysis_failed(event.turn, event.error):
            return
        self.notice_log.append(event.error)
        self.notify(f"Could not analyse the message from {conv.customer or conv.conversation_id}: {event.error}",
                    severity="error", timeout=10, markup=False)
        self.refresh_list()
        if conv.conversation_id == self.selected:
            self.show_current()

    def _record_shown(self, arrived: float, selected: bool) -> None:
        """Arrival -> on-screen latency, measured after the refresh that shows it (the benchmark reads it)."""
        ms = (time.perf_counter() - arrived) * 1000
        self.shown_latencies.append(ms)
        if selected:
            self.shown_latencies_selected.append(ms)

    def on_suggestion_streamed(self, event: m.SuggestionStreamed) -> None:
        """Apply a streamed snapshot of one slot (the turn drops those of stopped runs)."""
        if self.closing:
            return
        conv = self.inbox.conversations.get(event.conversation_id)
        if conv is None:
            return
        slot = event.update.slot
        known = conv.machine.slots.get(slot)
        first = event.first_token_ms is not None and (known is None or known.first_token_ms is None)
        if not conv.machine.apply(event.generation, event.update, event.first_token_ms):
            return
        if first and slot > 0 and event.first_token_ms is not None:
            self.status.set_latency("first token", event.first_token_ms)
        if conv.conversation_id == self.selected:
            self.show_suggestions(conv)

    def on_generation_finished(self, event: m.GenerationFinished) -> None:
        """Mark the run as over; a failed backend is a notification (the other slots stay)."""
        conv = self.inbox.conversations.get(event.conversation_id)
        if conv is not None and conv.machine.finished(event.generation) and event.error:
            self.notify(f"Suggestions failed: {event.error}", severity="error", markup=False)

    def on_send_failed(self, event: m.SendFailed) -> None:
        """The outbox refused the reply: take it out of the transcript and back into the composer."""
        if self.closing:
            return
        conv = self.inbox.conversations.get(event.conversation_id)
        if conv is None:
            return
        self.record(conv.machine.send_failed(event.reply, self.clock()))
        text = event.reply.message.text
        if conv is self.current and not self.ui(Composer).text.strip():
            self.ui(Composer).set_reply(text)
        else:
            conv.draft = text + ("\n" + conv.draft if conv.draft else "")
        self.show_current()
        self.refresh_list()
        self.notify(f"Not sent ({event.error}); the reply is back in the composer", severity="error",
                    timeout=15, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place for unexpected worker failures: tell the agent, keep running."""
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.name} failed: {event.worker.error}", severity="error", markup=False)

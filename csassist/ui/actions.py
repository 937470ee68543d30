"""What the agent's keys do: accept, edit, send, reject, regenerate, move, search, correct, stats, help.

A mixin of :class:`csassist.ui.app.CsassistApp` (kept apart so app.py stays about wiring).  Each action
is a few lines: it calls one method of the conversation's :class:`~csassist.ui.turn.Turn` (which decides
the feedback outcomes), hands what it returns to the recorder (:mod:`csassist.ui.recorder`, which writes
off the UI thread) and redraws.
"""

from __future__ import annotations

from csassist.ui.host import AppHost
from csassist.ui.screens.handover import HandoverScreen
from csassist.ui.screens.help import HelpScreen, key_rows
from csassist.ui.screens.intent import IntentScreen
from csassist.ui.screens.kb_search import KBSearchScreen
from csassist.ui.screens.reject import RejectScreen
from csassist.ui.screens.stats import StatsScreen
from csassist.ui.widgets.composer import Composer
from csassist.ui.widgets.conversation_list import ConversationList
from csassist.ui.workers import default_factory, with_backend


class AgentActions(AppHost):
    """The ``action_*`` methods bound in ``CsassistApp.BINDINGS`` and the palette's commands."""

    def action_accept(self, slot: int) -> None:
        """Put suggestion ``slot`` into the composer (one key)."""
        conv = self.current
        text = conv.machine.accept(slot) if conv else None
        if conv is None or text is None:
            self.notify(f"Suggestion {slot + 1} is not there yet", severity="warning")
            return
        self.ui(Composer).set_reply(text)
        self.show_suggestions(conv)

    def action_drop_unsupported(self) -> None:
        """Put the chosen suggestion (or suggestion 1) in the composer without its unsupported sentences."""
        from csassist.core.reply.grounding import drop_unsupported

        conv = self.current
        machine = conv.machine if conv else None
        slot = machine.picked if machine and machine.picked is not None else 0
        state = machine.slots.get(slot) if machine else None
        grounding = state.suggestion.grounding if state and state.suggestion else None
        if conv is None or machine is None or state is None or grounding is None:
            self.notify("No finished suggestion to trim", severity="warning")
            return
        if not grounding.unsupported:
            self.notify(f"Every sentence of suggestion {slot + 1} is supported", timeout=3)
            return
        text = machine.accept(slot)  # sent trimmed, it counts as 'edited'
        if text is None:
            self.notify(f"Suggestion {slot + 1} cannot be used", severity="warning")
            return
        self.ui(Composer).set_reply(drop_unsupported(text, grounding))
        self.show_suggestions(conv)
        self.notify(f"Dropped {len(grounding.unsupported)} unsupported sentence(s)", timeout=3)

    def action_handover(self) -> None:
        """Hand-over summary of the selected conversation (goal, facts, said, promised, open)."""
        from csassist.core.reply.summary import summarize

        conv = self.current
        if conv is None or not conv.messages:
            self.notify("No conversation to summarise", severity="warning")
            return
        company = self.settings.company
        summary = summarize(conv.messages, intent=conv.intent_label or None,
                            order_patterns=company.order_patterns, tracking_patterns=company.tracking_patterns)
        self.push_screen(HandoverScreen(summary))

    def action_edit(self) -> None:
        """Focus the composer to edit the reply."""
        self.ui(Composer).focus()

    def action_send(self) -> None:
        """Send the composer's text: the turn decides the outcomes, the recorder writes reply and events."""
        conv, composer = self.current, self.ui(Composer)
        text = composer.text.strip()
        if conv is None or not text:
            self.notify("Nothing to send: use 1-3 or type a reply first", severity="warning")
            return
        reply = conv.machine.send(text, self.clock())
        if self.send_as_note is not None:  # the agent chose reply / private note (helpdesk connectors read it)
            reply.meta["private"] = self.send_as_note
        self.deliver(reply)
        self.agent_replied(conv.conversation_id)
        conv.draft = ""
        composer.set_reply("")
        self.ui(ConversationList).focus()
        self.show_current()
        self.refresh_list()
        self.notify(f"Sent to {conv.customer or conv.conversation_id}", markup=False, timeout=2)

    def action_toggle_note(self) -> None:
        """Switch between posting replies and private notes (for review in the helpdesk)."""
        current = self.send_as_note if self.send_as_note is not None else self.settings.chatwoot.private_notes
        self.send_as_note = not current
        self.notify("Sending drafts as private notes" if self.send_as_note else "Sending replies to the customer",
                    timeout=3)

    def action_reject(self) -> None:
        """Reject the chosen suggestion (or suggestion 1) with a reason from a modal."""
        conv = self.current
        machine = conv.machine if conv else None
        slot = machine.picked if machine and machine.picked is not None else 0
        state = machine.slots.get(slot) if machine else None
        if conv is None or machine is None or machine.drafted is None or state is None or state.decided \
                or not state.usable:
            self.notify("No finished suggestion to reject", severity="warning")
            return
        generation = machine.drafted.generation

        def rejected(reason: str | None) -> None:
            was_picked = machine.picked == slot
            event = machine.reject(slot, reason, self.clock(), generation) if reason else None
            if event is None:
                return
            self.record([event])
            if was_picked:
                self.ui(Composer).set_reply("")
            self.show_suggestions(conv)

        self.push_screen(RejectScreen(self.settings.ui.reject_reasons, slot), rejected)

    def action_regenerate(self) -> None:
        """New drafts for the current turn (the shown ones count as rejected: 'regenerated')."""
        conv = self.current
        if conv is None or not self.draft_for(conv, regenerate=True):
            self.notify("Nothing to regenerate yet", severity="warning")

    def _move(self, step: int) -> None:
        """Select the neighbour conversation in display order."""
        ordered = [c.conversation_id for c in self.inbox.ordered(self.by_urgency, self.clock())]
        if ordered:
            index = ordered.index(self.selected) if self.selected in ordered else -step
            self.select(ordered[(index + step) % len(ordered)])

    def action_next_conversation(self) -> None:
        """Next conversation in the inbox."""
        self._move(1)

    def action_previous_conversation(self) -> None:
        """Previous conversation in the inbox."""
        self._move(-1)

    def action_toggle_sort(self) -> None:
        """Sort the inbox by urgency (then waiting time) or by arrival."""
        self.by_urgency = not self.by_urgency
        self.refresh_list()
        self.notify("Sorted by urgency" if self.by_urgency else "Sorted by arrival", timeout=2)

    def action_kb_search(self) -> None:
        """Open KB search prefilled with the customer's last message."""
        last = self.current.last_customer_message if self.current else None

        def use(text: str | None) -> None:
            if text and self.current is not None:
                self.current.machine.unpick()
                self.ui(Composer).set_reply(text)

        self.push_screen(KBSearchScreen(self.assistant, last.text[:200] if last else ""), use)

    def action_correct_intent(self) -> None:
        """Pick the right intent for the selected conversation (stored with its feedback)."""
        conv = self.current
        if conv is None:
            return
        top = [s.intent for s in conv.analysis.intent.top] if conv.analysis else []
        labels = list(self.assistant.intent_labels) if self.assistant is not None else []

        def corrected(label: str | None) -> None:
            if label:
                conv.machine.correct_intent(label)
                self.show_current()
                self.refresh_list()

        self.push_screen(IntentScreen(top + sorted(labels), conv.intent_label), corrected)

    def action_stats(self) -> None:
        """Acceptance statistics from the feedback log."""
        from csassist.core.learn.stats import compute_stats

        log = self.feedback
        if log is None:
            self.notify("No feedback log open", severity="warning")
            return
        if not log.is_team:
            self.push_screen(StatsScreen(compute_stats(log)))
            return

        def load() -> None:  # the team store is a network database: never query it on the UI thread
            try:
                stats = compute_stats(log, agent_id=log.agent_id)  # this agent's own numbers
            except Exception as exc:  # noqa: BLE001 - an unreachable store is a notice, not a crash
                self.call_from_thread(self.notify, f"Statistics unavailable: {exc}", severity="error")
                return
            self.call_from_thread(self.push_screen, StatsScreen(stats))

        self.run_worker(load, thread=True, name="stats", group="stats", exit_on_error=False)

    def action_help(self) -> None:
        """The key map (with the user's remappings)."""
        keymap = dict(self._keymap)
        rows = key_rows(list(self.BINDINGS) + list(Composer.BINDINGS) + list(ConversationList.BINDINGS), keymap)
        rows += [
            ("ctrl+p", "Palette", "Command palette: KB search, re-index, switch backend or theme", ""),
            ("ctrl+q", "Quit", "Quit (every sent reply is already in the outbox)", ""),
        ]
        self.push_screen(HelpScreen(rows))

    def switch_backend(self, backend: str) -> None:
        """Reload the engine with another generation backend (command palette)."""
        if self.factory is None:
            self.notify("This session's engine cannot be switched", severity="warning")
            return
        self.settings = with_backend(self.settings, backend)
        self.notify(f"Switching to the {backend} backend…")
        self.start_loading(self.factory, self.settings)

    def reindex(self) -> None:
        """Rebuild the KB index and reload the engine (command palette)."""
        self.start_loading(self.factory or default_factory, self.settings, reindex=True)

"""Every widget, screen and notification renders the shared hostile corpus literally and never crashes.

Issue 10 item 4: model text, KB text, config values, file names and theme files were parsed as
markup (``https://h.example/[/]x`` in a draft crashed the app, ``[@click=app.quit]`` became a live
action, ``[Customer Name]`` vanished from the warning line, a theme with ``primary = "[/]"`` crashed
start-up).  Here one engine echoes each hostile string into *every* field it returns (intent labels,
entities, urgency reasons, KB titles/bodies/ids, drafts, fact flags, backend names, errors, model
names), the config and the theme folder carry them too, and the whole composed screen is checked
after each step: no raw control character, no hyperlink, no clickable action in data, the marker text
visible as typed, and the app still running.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.segment import Segment

from csassist.core.engine import EngineInfo
from csassist.core.learn.stats import GroupStats, StatsReport
from csassist.core.sanitize import is_terminal_safe
from csassist.core.types import (
    Analysis,
    CancelToken,
    Entity,
    IntentPrediction,
    IntentScore,
    Message,
    Passage,
    Suggestion,
    SuggestionUpdate,
    Urgency,
)
from csassist.settings import Settings, UISettings
from csassist.ui import messages as m
from csassist.ui.app import CsassistApp
from csassist.ui.render import clean, one_line, safe_content, safe_text, theme_colour
from csassist.ui.screens.handover import HandoverScreen
from csassist.ui.screens.help import HelpScreen
from csassist.ui.screens.intent import IntentScreen
from csassist.ui.screens.kb_search import KBSearchScreen
from csassist.ui.screens.reject import RejectScreen
from csassist.ui.screens.stats import StatsScreen
from csassist.ui.themes import load_themes
from csassist.ui.widgets.conversation_list import ConversationList
from csassist.ui.widgets.suggestions import SuggestionCard
from csassist.ui.widgets.transcript import Transcript
from tests.hostile_corpus import ESCAPES, HOSTILE_NAMED, HUGE, MARKUP, SURROGATES, UNICODE_TRICKS
from tests.ui.conftest import SIZE, customer, settle
from tests.ui.fakes import FakeAssistant

BUNDLED = Path(__file__).resolve().parents[2] / "themes"
#: What the app shows: one conversation per text (regex bombs and PII are the core's business).
TEXTS: tuple[tuple[str, str], ...] = MARKUP + ESCAPES + UNICODE_TRICKS + SURROGATES + HUGE
SHORT: dict[str, str] = {name: text for name, text in TEXTS if len(text) < 2000}
#: Substrings that must stay visible, as typed, wherever the corpus text of that name is shown.
LITERAL_MARKERS: dict[str, str] = {
    "closing-tag-in-url": "https://h.example/[/]x",
    "bare-close": "[/]",
    "click-action": "[@click=app.quit]CLICK[/]",
    "link-markup": "[link=https://evil.example]harmless[/link]",
    "rich-style": "[bold red]not bold[/bold red]",
    "placeholder-like": "[Customer Name], your [company]",
    "textual-variable": "[$warning]x[/]",
}


def forbidden_in(text: str) -> bool:
    """True when ``text`` holds a character that must never reach the terminal raw (ESC, CSI, bidi...)."""
    return not is_terminal_safe(text)


class EchoingAssistant(FakeAssistant):
    """Returns the customer's (hostile) text in every string field the UI shows."""

    def analyze(self, text: str, history: Sequence[Message] = ()) -> Analysis:
        """Intent labels, entities and urgency reasons are all the message text."""
        top = (IntentScore(text, 0.7), IntentScore("[b]second[/b]", 0.2), IntentScore("ok", 0.1))
        entity = Entity(text, text, 0, len(text), text)
        prediction = IntentPrediction(top=top, out_of_scope=False, threshold=0.3, model=text)
        return Analysis(prediction, (entity,), Urgency("urgent", (text,)), redacted_text=text)

    def retrieve(self, text: str, k: int | None = None, history: Sequence[Message] = ()) -> list[Passage]:
        """KB passages whose title, body and article id are the message text."""
        return [Passage(f"{text}#0", text, text, text, f"kb/{text}.md", 0.5)]

    def suggest(self, message: Message, history: Sequence[Message], analysis: Analysis | None,
                passages: Sequence[Passage], cancel: CancelToken, *, n: int | None = None,
                seed: int = 0) -> Iterator[SuggestionUpdate]:
        """A draft quoting the text with a fact flag, a hostile backend name, and a failed slot."""
        text = message.text
        flags = (f"unsupported URL {text}", f"unfilled placeholder {text}")
        yield SuggestionUpdate(0, text, "extractive", done=True,
                               suggestion=Suggestion(text, (), "extractive", "", 1.0, None, "p", flags=flags))
        yield SuggestionUpdate(1, text, text[:40], done=True,
                               suggestion=Suggestion(text, (), text[:40], text, 1.0, None, "p"))
        yield SuggestionUpdate(2, "", "local", done=True, error=text)

    def describe(self) -> EngineInfo:
        """Model names from config are data too."""
        return EngineInfo(backend="[@click=app.quit]CLICK[/]", device="\x1b]52;c;eA==\x07",
                          generator="[Customer Name]", embedder="[/]", intent_model="\u202eevil", index="[b]x")


def screen_problems(app: CsassistApp) -> list[str]:
    """What is wrong with the composed screen right now: raw controls, links, actions in data."""
    problems: list[str] = []
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        for segment in strip:
            assert isinstance(segment, Segment)
            if forbidden_in(segment.text):
                problems.append(f"line {y}: raw control in {ascii(segment.text[:40])}")
            style = segment.style
            if style is None:
                continue
            if style.link:
                problems.append(f"line {y}: hyperlink {style.link!r} on {segment.text[:40]!r}")
            if "CLICK" in segment.text and "@click" in (style.meta or {}):
                problems.append(f"line {y}: live action {style.meta!r} on {segment.text[:40]!r}")
    if not app.is_running:
        problems.append("the app stopped")
    return problems


def screen_text(app: CsassistApp) -> str:
    """The composed screen as plain text (all layers: toasts and modals included)."""
    return "\n".join("".join(s.text for s in strip) for strip in app.screen._compositor.render_strips())


@pytest.mark.parametrize(("name", "text"), HOSTILE_NAMED, ids=[name for name, _ in HOSTILE_NAMED])
def test_safe_text_helpers_are_literal_and_terminal_safe(name: str, text: str) -> None:
    """Each helper of the one safe-text path keeps markup literal and lets no control character through."""
    outputs = [clean(text), safe_text(text).plain, safe_content(text).plain, one_line(text, 40)]
    for out in outputs:
        assert not forbidden_in(out), (name, out[:80])
    assert len(one_line(text, 40)) <= 40
    assert len(safe_content(text).plain) <= 500
    marker = LITERAL_MARKERS.get(name)
    if marker:
        assert all(marker in out for out in outputs[:3])


def test_theme_colour_only_passes_colours() -> None:
    """A theme variable is used as a Rich style only when it parses as a colour."""
    variables = {"a": "#ff5f5f", "b": "link file:///etc/passwd", "c": "[/]", "d": "red", "e": ""}
    assert theme_colour(variables, "a").lower() == "#ff5f5f"
    assert theme_colour(variables, "b") == theme_colour(variables, "c") == theme_colour(variables, "e") == ""
    assert theme_colour(variables, "d") and theme_colour(variables, "missing") == ""


def hostile_themes(folder: Path) -> Path:
    """A user theme folder that tries every way in: markup in values, names, file names, variables."""
    folder.mkdir()
    (folder / "slash.toml").write_text('name = "slash"\nprimary = "[/]"\n', encoding="utf-8")
    (folder / "click.toml").write_text('name = "[@click=app.quit]CLICK[/]"\nprimary = "#ffffff"\n', encoding="utf-8")
    (folder / "[company] \x1b[2J.toml").write_text('primary = "not [company]"\n', encoding="utf-8")
    (folder / "vars.toml").write_text(
        'name = "vars"\nprimary = "#123456"\n[variables]\ncsassist-urgent = "link file:///etc/passwd"\n',
        encoding="utf-8")
    (folder / "style.toml").write_text(
        'name = "style"\nprimary = "#123456"\n[variables]\nblock-cursor-text-style = "[@click=app.quit]x"\n',
        encoding="utf-8")
    return folder


def test_hostile_theme_files_are_named_problems(tmp_path: Path) -> None:
    """Markup or links in a theme's values or name never become a theme; each file is reported."""
    themes, problems = load_themes([hostile_themes(tmp_path / "themes")])
    assert themes == []
    assert len(problems) == 5
    reasons = " ".join(p.message for p in problems)
    assert "'[/]' is not a colour" in reasons and "name must be" in reasons
    assert "variables.csassist-urgent" in reasons and "block-cursor-text-style" in reasons


async def test_every_widget_and_notification_renders_the_corpus(app_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One conversation per hostile text: inbox, transcript, suggestions, panel, status, toasts, screens."""
    warnings = tuple(f"config.toml: {text}" for text in SHORT.values())
    settings = Settings(ui=UISettings(theme="slash", reject_reasons=tuple(SHORT.values())[:9]), warnings=warnings)
    assistant = EchoingAssistant()
    assistant.intent_labels = list(SHORT.values())
    app = app_factory(settings, assistant=assistant, theme_dirs=[BUNDLED, hostile_themes(tmp_path / "themes")],
                      notices=["[company] notice \x1b[2J"], source_label="[/] \x1b]52;c;eA==\x07 feed")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        assert app.theme == "csassist-dark"  # the broken theme fell back; start-up survived "[/]"
        notes = [n.message for n in app._notifications]
        assert any("[company]" in n for n in notes) and any("'[/]' is not a colour" in n for n in notes)
        assert any("[@click=app.quit]CLICK[/]" in n for n in notes)
        assert not any(forbidden_in(n) for n in notes)
        assert screen_problems(app) == []

        names = {f"{name}: {text[:200]}": name for name, text in TEXTS}
        for cid, name in names.items():
            app.ingest(customer(cid, dict(TEXTS)[name], name=dict(TEXTS)[name][:300]))
        await settle(pilot, app)
        assert screen_problems(app) == []
        rows = app.query_one(ConversationList).row_texts()
        assert len(rows) == len(TEXTS) and not any(forbidden_in(r) for r in rows)

        for _ in TEXTS:  # visit every conversation: transcript, cards, panel for each text
            conv = app.current
            assert conv is not None
            marker = LITERAL_MARKERS.get(names[conv.conversation_id])
            assert screen_problems(app) == [], conv.conversation_id[:60]
            if marker:
                assert marker in app.query_one(Transcript).plain_text()
                card = app.query_one("#suggestion-1", SuggestionCard)
                subtitle = card.shown_warning
                assert subtitle.startswith("⚠ unsupported URL ") and marker in subtitle, subtitle
            await pilot.press("n")
            await settle(pilot, app, rounds=1)

        screens: list[tuple[str, type[Any]]] = [("question_mark", HelpScreen), ("slash", KBSearchScreen),
                                                ("i", IntentScreen), ("x", RejectScreen), ("h", HandoverScreen)]
        for key, screen_type in screens:
            await pilot.press(key)
            await settle(pilot, app)
            assert isinstance(app.screen, screen_type), key
            assert screen_problems(app) == [], key
            await pilot.press("escape")
            await settle(pilot, app)
        await pilot.press("1")  # accept a hostile draft, send it: "Sent to <hostile name>" toast
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        for text in SHORT.values():
            app.post_message(m.EngineNotice(text, severity="warning"))
        app.post_message(m.AssistantReady(assistant, warnings=("[/] warning", "[Customer Name] gone?")))
        app.post_message(m.GeneratorReady(assistant, None, "[@click=app.quit]CLICK[/]"))
        await settle(pilot, app)
        assert screen_problems(app) == []
        assert "[Customer Name] gone?" in " ".join(n.message for n in app._notifications)

        app.push_screen(StatsScreen(StatsReport(total=3, by_intent={
            text: GroupStats(total=1, acceptance_rate=1.0) for text in SHORT.values()})))
        await settle(pilot, app)
        assert screen_problems(app) == []
        assert "[@click=app.quit]CLICK[/]" in screen_text(app)

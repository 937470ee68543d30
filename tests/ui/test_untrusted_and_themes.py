"""Hostile customer text stays literal and the layout holds; themes load as data, bad ones fall back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from csassist.settings import Settings, UISettings
from csassist.ui.screens.help import HelpScreen
from csassist.ui.themes import load_theme_file, load_themes
from csassist.ui.widgets.assist_panel import AssistPanel
from csassist.ui.widgets.composer import Composer
from csassist.ui.widgets.conversation_list import ConversationList
from csassist.ui.widgets.transcript import Transcript
from tests.ui.conftest import SIZE, customer, settle
from tests.ui.fakes import FakeAssistant

HOSTILE = (
    "[bold red]x[/] [link=file:///etc/passwd]click[/link] "
    "\x1b]52;c;ZXZpbA==\x07 \x1b[2J\x1b[H tail"
)
BUNDLED = Path(__file__).resolve().parents[2] / "themes"


async def test_markup_and_escapes_stay_literal_and_layout_holds(app_factory) -> None:  # type: ignore[no-untyped-def]
    """Rich markup shows as typed; ESC/BEL become visible symbols; 50 KB does not break the layout."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("evil", HOSTILE, name="[red]Mallory[/red]\x1b[31m"))
        app.ingest(customer("big", "refund " + "A" * 50_000, name="Big"))
        await settle(pilot, app)
        transcript = app.query_one(Transcript)
        text = transcript.plain_text()
        assert "[bold red]x[/]" in text and "[link=file:///etc/passwd]click[/link]" in text
        assert "␛]52;c;ZXZpbA==␇" in text and "␛[2J" in text
        assert "\x1b" not in text and "\x07" not in text
        # nothing in the rendered screen carries a hyperlink or raw escape
        for strip in transcript.lines:
            for segment in strip:
                assert "\x1b" not in segment.text
                assert segment.style is None or segment.style.link is None
        inbox_row = app.query_one(ConversationList).row_texts()[0]
        assert "[red]Mallory[/" in inbox_row and "\x1b" not in inbox_row
        region_before = {w.id: w.region for w in app.query("#conversations, #transcript, #assist, #composer")}

        await pilot.press("n")  # the 50 KB conversation
        await settle(pilot, app)
        assert app.selected == "big"
        regions = {w.id: w.region for w in app.query("#conversations, #transcript, #assist, #composer")}
        assert regions == region_before  # fixed layout: nothing pushed off screen
        assert "truncated" in app.query_one(Transcript).plain_text()
        assert app.query_one(Composer).region.bottom <= SIZE[1]
        assert app.query_one(AssistPanel).region.height > 5
        # the app still answers keys with the big message on screen
        await pilot.press("1")
        assert app.query_one(Composer).text.startswith("Hello")


async def test_markup_in_kb_titles_and_intent_labels_is_literal(app_factory) -> None:  # type: ignore[no-untyped-def]
    """KB titles and intent labels are data too: markup in them shows literally, nothing crashes."""
    from csassist.core.types import Message, Passage
    from csassist.ui.screens.intent import IntentScreen

    class OddKB(FakeAssistant):
        def retrieve(self, text: str, k: int | None = None, history: Sequence[Message] = ()) -> list[Passage]:
            return [Passage("x#0", "x", "[bold]Bold[/] [link=file:///etc]y[/]", "[red]body[/]", "kb/x.md", 0.5)]

    assistant = OddKB()
    assistant.intent_labels = ["[b]weird[/b]", "ok"]
    app = app_factory(assistant=assistant)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "hello"))
        await settle(pilot, app)
        collapsible = app.query_one(AssistPanel).query_one("Collapsible")
        assert str(collapsible.title).startswith("1. [bold]Bold[/] [link=file:///e")
        await pilot.press("i")
        assert isinstance(app.screen, IntentScreen)
        await pilot.press("escape")


def test_bundled_themes_load() -> None:
    """The three shipped themes parse into Textual themes with csassist's variables."""
    themes, problems = load_themes([BUNDLED])
    names = {t.name for t in themes}
    assert {"csassist-dark", "csassist-light", "csassist-high-contrast"} <= names
    assert problems == []
    light = load_theme_file(BUNDLED / "csassist-light.toml")
    assert light.dark is False and light.variables["csassist-urgent"] == "#b00020"


def test_bad_theme_files_are_problems_not_crashes(tmp_path: Path) -> None:
    """Invalid TOML, a bad colour, an unknown key, YAML that is a list: each named, none raised."""
    (tmp_path / "a.toml").write_text("name = 'a'\nprimary = [", encoding="utf-8")
    (tmp_path / "b.toml").write_text("name = 'b'\nprimary = 'not-a-colour'\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("name: c\nprimary: '#fff'\nsparkle: 1\n", encoding="utf-8")
    (tmp_path / "d.yml").write_text("- just\n- a list\n", encoding="utf-8")
    (tmp_path / "e.yaml").write_text("name: mine\nprimary: '#ff00ff'\ndark: false\n", encoding="utf-8")
    themes, problems = load_themes([tmp_path])
    assert [t.name for t in themes] == ["mine"]
    messages = {p.path.name: p.message for p in problems}
    assert set(messages) == {"a.toml", "b.toml", "c.yaml", "d.yml"}
    assert "invalid TOML" in messages["a.toml"] and "not a colour" in messages["b.toml"]
    assert "sparkle" in messages["c.yaml"]


async def test_broken_user_theme_notifies_and_falls_back(app_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A broken user theme chosen in config: notification naming the file, the default theme is used."""
    user = tmp_path / "themes"
    user.mkdir()
    (user / "mine.toml").write_text("name = 'mine'\nprimary = '#zzz'\n", encoding="utf-8")
    app = app_factory(Settings(ui=UISettings(theme="mine")), theme_dirs=[BUNDLED, user])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.theme == "csassist-dark"
        notes = [n.message for n in app._notifications]
        assert any("mine.toml" in n and "colour" in n for n in notes)
        assert any("Theme 'mine' is not available" in n for n in notes)


async def test_theme_switching_and_user_theme(app_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A user's theme file is offered; switching themes recolours the app variables."""
    user = tmp_path / "themes"
    user.mkdir()
    (user / "ocean.yaml").write_text("name: ocean\nprimary: '#1e90ff'\nbackground: '#001020'\n", encoding="utf-8")
    app = app_factory(theme_dirs=[BUNDLED, user], theme_name="ocean")
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await settle(pilot, app)
        assert app.theme == "ocean"
        assert app.theme_variables["csassist-urgent"] == "#ff5f5f"  # app default fills the gap
        app.theme = "csassist-high-contrast"
        await settle(pilot, app)
        assert app.theme_variables["background"].lower() in ("#000000", "#000")
        assert app.theme_variables["csassist-elevated"] == "#ffff00"


async def test_keys_are_remappable_and_listed_in_help(app_factory) -> None:  # type: ignore[no-untyped-def]
    """[ui] keys remaps a binding id; the help screen shows the new key."""
    settings = Settings(ui=UISettings(keys={"suggestion.use_1": "a", "app.help": "f1"}))
    app = app_factory(settings)
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel"))
        await settle(pilot, app)
        await pilot.press("1")
        assert app.query_one(Composer).text == ""
        await pilot.press("a")
        assert app.query_one(Composer).text.startswith("Hello")
        await pilot.press("f1")
        await settle(pilot, app)
        assert isinstance(app.screen, HelpScreen)
        rows = {description: keys for keys, description, _, _ in app.screen.rows}
        assert rows["Use 1"] == "a" and rows["Send"] == "ctrl+s" and rows["KB"] == "/"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

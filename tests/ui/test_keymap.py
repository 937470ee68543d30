"""[ui.keys] remappings are checked at start: clashes, unknown ids and typing keys on typing shortcuts.

Issue 10: ``"composer.send" = "n"`` next to ``"conversation.next" = "n"`` was accepted, and typing
"Thanks" in the reply box sent "Tha".
"""

from __future__ import annotations

from textual.binding import Binding

from csassist.settings import Settings, UISettings
from csassist.ui.app import key_scopes
from csassist.ui.keymap import check_keymap, is_printable, split_keys
from csassist.ui.widgets.composer import Composer
from tests.ui.conftest import SIZE, customer, settle


def test_split_and_printable() -> None:
    """Textual's long key names; printable means 'types a character'."""
    assert split_keys("ctrl+s, ?,n") == ["ctrl+s", "question_mark", "n"]
    assert [is_printable(k) for k in ("n", "N", "question_mark", "space", "ctrl+n", "f5", "enter")] == [
        True, True, True, True, False, False, False]


def test_the_default_bindings_are_consistent() -> None:
    """No clash in any scope, and no priority binding on a printable key (typing can never trigger one)."""
    assert check_keymap({}, key_scopes()).problems == []
    for scope in key_scopes():
        assert not [b.id for b in scope if b.priority and any(is_printable(k) for k in split_keys(b.key))]


def test_bad_remappings_are_dropped_with_a_reason() -> None:
    """Unknown id, printable key on a priority binding, a reserved key, a clash; the good one stays."""
    requested = {"composer.send": "n", "conversation.next": "n", "nope.nothing": "z", "app.help": "ctrl+q",
                 "suggestion.use_1": "x", "kb.search": "f2", "app.stats": ""}
    result = check_keymap(requested, key_scopes())
    assert result.keymap == {"conversation.next": "n", "kb.search": "f2"}
    problems = "\n".join(result.problems)
    assert 'Unknown key binding id "nope.nothing"' in problems and "composer.send" in problems
    assert '"composer.send" = "n": a key that types a character' in problems and "keeping ctrl+s" in problems
    assert "ctrl+q is needed by the app itself" in problems
    assert '"suggestion.use_1" and "suggestion.reject" would share the key x; suggestion.use_1 keeps 1' in problems
    assert '"app.stats" = \'\' names no key' in problems


def test_a_clash_between_two_remappings_keeps_both_defaults() -> None:
    """Two ids moved onto one key: neither move is applied."""
    scope = [Binding("a", "one", id="one"), Binding("b", "two", id="two"), Binding("c", "three", id="three")]
    result = check_keymap({"one": "z", "two": "z", "three": "y"}, [scope])
    assert result.keymap == {"three": "y"}
    assert result.problems == ['ui.keys: "one" and "two" would share the key z; one keeps a; two keeps b']


def test_bindings_in_different_scopes_may_share_a_key() -> None:
    """The composer's Escape and a modal's Escape never meet."""
    first = [Binding("escape", "leave", id="composer.leave")]
    second = [Binding("q", "close", id="stats.close")]
    assert check_keymap({"stats.close": "escape"}, [first, second]).keymap == {"stats.close": "escape"}


async def test_conflicting_keymap_is_reported_and_typing_never_sends(app_factory) -> None:  # type: ignore[no-untyped-def]
    """Start with the issue's keymap: warnings at start; 'Thanks' is typed whole; n still moves; ctrl+s sends."""
    keys = {"composer.send": "n", "conversation.next": "n", "suggestion.accept_all": "a"}
    app = app_factory(Settings(ui=UISettings(keys=keys)))
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "where is my parcel", name="Ana"))
        app.ingest(customer("c2", "refund please", name="Bo"))
        await settle(pilot, app)
        notes = [n.message for n in app._notifications]
        assert any('"composer.send" = "n"' in n and "keeping ctrl+s" in n for n in notes)
        assert any('Unknown key binding id "suggestion.accept_all"' in n for n in notes)
        await pilot.press("e")
        composer = app.query_one(Composer)
        assert app.focused is composer
        await pilot.press("T", "h", "a", "n", "k", "s", "space", "n", "o", "w")
        await settle(pilot, app)
        assert composer.text == "Thanks now" and app.outbox.sent == []
        await pilot.press("escape", "n")
        assert app.selected == "c2"
        await pilot.press("p", "e", "ctrl+s")
        await settle(pilot, app)
        assert app.outbox.sent[0][:2] == ("c1", "Thanks now")


async def test_a_typing_key_cannot_fire_in_the_kb_search_input_either(app_factory) -> None:  # type: ignore[no-untyped-def]
    """Modal inputs see printable keys too: the checked keymap keeps send on ctrl+s there as well."""
    app = app_factory(Settings(ui=UISettings(keys={"composer.send": "s"})))
    async with app.run_test(size=SIZE) as pilot:
        app.ingest(customer("c1", "forgot my password"))
        await settle(pilot, app)
        await pilot.press("1", "slash")
        await settle(pilot, app)
        await pilot.press("s", "s")
        await settle(pilot, app)
        assert app.outbox.sent == []

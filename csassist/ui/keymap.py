"""The agent's key remappings (``[ui.keys]`` in config.toml), checked before Textual applies them.

Textual's ``App.set_keymap`` takes any mapping silently: an unknown binding id does nothing, two ids on
one key clash, and a *priority* binding on a printable key fires before the focused widget sees the key,
so ``"composer.send" = "n"`` sent "Tha" while the agent typed "Thanks" (issue 10).  :func:`check_keymap`
keeps only the remappings that are safe, and says in plain words what it dropped and why; a dropped
binding keeps its default key.

The rules:

* the binding id must exist (a typo is reported with the known ids);
* a priority binding (one that works while typing, e.g. ``composer.send``) never gets a single
  printable key; ordinary bindings may (the composer and the inputs consume printable keys first);
* keys Textual itself needs (quit, palette, focus moves) are not taken;
* two bindings that can be active together (see :func:`scopes`) never share a key; when a remapping
  causes a clash, every remapping in the clash is dropped, so both bindings keep their defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from textual.binding import Binding, BindingType
from textual.keys import _normalize_key_list, key_to_character

#: Keys Textual (or the terminal) needs: quit, the command palette, copy, focus moves.
RESERVED_KEYS: frozenset[str] = frozenset({"ctrl+q", "ctrl+c", "ctrl+p", "tab", "shift+tab"})


@dataclass
class KeymapCheck:
    """The safe keymap to give ``App.set_keymap`` and the problems to show the agent."""

    keymap: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def split_keys(keys: str) -> list[str]:
    """``"ctrl+s, f5"`` -> ``["ctrl+s", "f5"]`` in Textual's long form (``"?"`` -> ``"question_mark"``)."""
    return [key for key in _normalize_key_list(keys).split(",") if key]


def is_printable(key: str) -> bool:
    """True for a key that types a character (``n``, ``N``, ``question_mark``, ``space``)."""
    character = key_to_character(key)
    return character is not None and character.isprintable()


def bindings_of(items: Iterable[BindingType]) -> list[Binding]:
    """The :class:`Binding` objects of a ``BINDINGS`` list (tuples are expanded as Textual does)."""
    out: list[Binding] = []
    for item in items:
        if isinstance(item, Binding):
            out.append(item)
        else:
            out.extend(Binding.make_bindings([item]))
    return out


def check_keymap(requested: Mapping[str, object], scopes: Sequence[Sequence[Binding]],
                 reserved: frozenset[str] = RESERVED_KEYS) -> KeymapCheck:
    """Keep the remappings of ``requested`` that are safe in every scope; report the others.

    ``scopes`` lists the groups of bindings that can be active at the same time (the app's own plus the
    focused widget's, or a modal screen's plus the app's priority ones).
    """
    known: dict[str, Binding] = {}
    for scope in scopes:
        for item in scope:
            if item.id:
                known.setdefault(item.id, item)
    result = KeymapCheck()
    for binding_id, value in requested.items():
        binding = known.get(binding_id)
        if binding is None:
            result.problems.append(f'Unknown key binding id "{binding_id}" in ui.keys, ignored '
                                   f'(known ids: {", ".join(sorted(known))})')
            continue
        keys = split_keys(value) if isinstance(value, str) else []
        default = binding.key
        if not keys:
            result.problems.append(f'ui.keys "{binding_id}" = {value!r} names no key; keeping {default}')
        elif binding.priority and any(is_printable(key) for key in keys):
            result.problems.append(f'ui.keys "{binding_id}" = "{value}": a key that types a character cannot be '
                                   f"used for a shortcut that works while typing; keeping {default}")
        elif taken := sorted(set(keys) & reserved):
            result.problems.append(f'ui.keys "{binding_id}" = "{value}": {", ".join(taken)} is needed by the app '
                                   f"itself; keeping {default}")
        else:
            result.keymap[binding_id] = ",".join(keys)
    while clash := _first_clash(result.keymap, scopes):
        first, second, key = clash
        dropped = [i for i in (first, second) if i in result.keymap]
        for binding_id in dropped:
            del result.keymap[binding_id]
        defaults = "; ".join(f"{i} keeps {known[i].key}" for i in (first, second))
        result.problems.append(f'ui.keys: "{first}" and "{second}" would share the key {key}; {defaults}')
    return result


def _first_clash(keymap: Mapping[str, str], scopes: Sequence[Sequence[Binding]]) -> tuple[str, str, str] | None:
    """Two binding ids on one key in one scope, at least one of them remapped; ``None`` when there is none."""
    for scope in scopes:
        owner: dict[str, str] = {}
        for binding in scope:
            if not binding.id:
                continue
            for key in split_keys(keymap.get(binding.id) or binding.key):
                other = owner.setdefault(key, binding.id)
                if other != binding.id and (other in keymap or binding.id in keymap):
                    return other, binding.id, key
    return None

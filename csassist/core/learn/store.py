"""One versioned model store for every trained artefact: intent models and LoRA adapters.

Why one store: before it, three modules each kept a "current/previous" pointer with different
rollback rules (adapters popped a history stack, intent models swapped current and previous, so
rolling back twice returned to the *newer* model).  A user must be able to predict what
``--rollback`` does, whatever was trained.

Layout of a store (one per kind of model, e.g. ``paths.intent_models_dir()``)::

    <root>/v0001-20261130T043000Z/   one saved version (written atomically: temp dir + rename)
           ...the model's own files...
           version.json              name, kind, created (UTC, ISO 8601), base, parent, metrics, note
    <root>/history.json              the promotion stack, oldest first
    <root>/current                   the promoted version's name (for people and older readers)

Semantics (the only ones):

* :meth:`ModelStore.save` writes a new version ``vNNNN-<UTC stamp>`` (one above the highest ever
  saved) and never changes what is in use.
* :meth:`ModelStore.promote` pushes a version on the stack: it becomes :meth:`current`.  Promoting a
  version already on the stack moves it to the top (it is not listed twice).
* :meth:`ModelStore.rollback` pops the stack: the app returns to the version promoted *before* the
  current one.  Rolling back again goes further back, never forward; past the first promotion the
  store is empty and the caller's base model is used (the index's intent head, the bare generator).
* Versions are never deleted by promotion or rollback, so a rolled-back version can be promoted again.

Older layouts are read as they are: a store with ``current``/``previous`` pointer files but no
``history.json`` (the intent models before this module) becomes the stack ``[previous, current]``;
version directories without ``version.json`` are listed with what ``metrics.json`` says.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csassist import paths
from csassist.core.atomic import atomic_directory, atomic_write_text
from csassist.core.errors import CsassistError, DataError

VERSION_FILE = "version.json"
HISTORY_FILE = "history.json"
CURRENT_FILE = "current"
_LEGACY_PREVIOUS = "previous"
_VERSION_NAME = re.compile(r"^v(\d{4,})-[0-9A-Za-z]+$")


@dataclass
class Draft:
    """A version being written: files go into ``path`` (a temp dir); ``version`` is set once it is saved."""

    name: str
    path: Path
    version: Version | None = None


@dataclass(frozen=True)
class Version:
    """One saved version: its directory and the metadata written beside the model files."""

    name: str
    path: Path
    kind: str = ""
    created: str = ""
    base: str = ""
    parent: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json`` listings)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "created": self.created,
            "base": self.base,
            "parent": self.parent,
            "metrics": dict(self.metrics),
            "note": self.note,
        }


class ModelStore:
    """Versioned directories of one kind of model, with a promotion stack (see the module docstring).

    ``marker`` names a file every complete version of this kind holds besides ``version.json``
    (``adapter_config.json`` for adapters, ``meta.json`` for intent models); it lets versions
    written before this store existed be listed and promoted.
    """

    def __init__(self, root: Path, kind: str, marker: str | None = None) -> None:
        self.root = Path(root)
        self.kind = kind
        self.marker = marker

    # ------------------------------------------------------------------------------------ reading
    def is_version(self, path: Path) -> bool:
        """Whether ``path`` is a complete saved version of this store."""
        if not path.is_dir() or not _VERSION_NAME.match(path.name):
            return False
        return (path / VERSION_FILE).is_file() or bool(self.marker and (path / self.marker).is_file())

    def versions(self) -> list[Version]:
        """Every saved version, oldest first (by number)."""
        if not self.root.is_dir():
            return []
        found = [self._read(p) for p in self.root.iterdir() if self.is_version(p)]
        return sorted(found, key=lambda v: _number(v.name))

    def get(self, name: str) -> Version:
        """The saved version called ``name``; :class:`DataError` when there is none."""
        clean = name.strip()
        path = self.root / clean
        if not _VERSION_NAME.match(clean) or not self.is_version(path):
            raise DataError(f"{path}: not a saved {self.kind} version (see `csassist models`)")
        return self._read(path)

    def history(self) -> list[str]:
        """The promotion stack, oldest first; versions deleted by hand are left out."""
        file = self.root / HISTORY_FILE
        if file.is_file():
            try:
                value = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise DataError(f"{file}: unreadable promotion history ({exc}); delete it to start over") from exc
            names = [str(v) for v in value] if isinstance(value, list) else []
        else:  # the older two-pointer layout
            names = [n for n in (self._pointer(_LEGACY_PREVIOUS), self._pointer(CURRENT_FILE)) if n]
        return [n for n in names if self.is_version(self.root / n)]

    def current(self) -> Version | None:
        """The promoted version the app uses, or ``None`` (the caller's base model)."""
        stack = self.history()
        return self._read(self.root / stack[-1]) if stack else None

    def previous(self) -> Version | None:
        """What :meth:`rollback` would return to (``None``: the base model, or nothing promoted)."""
        stack = self.history()
        return self._read(self.root / stack[-2]) if len(stack) > 1 else None

    # ------------------------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def save(
        self,
        *,
        base: str = "",
        parent: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        note: str = "",
        now: datetime | None = None,
    ) -> Iterator[Draft]:
        """Yield a :class:`Draft` whose ``path`` (a temp dir) receives the files; it appears atomically.

        ``with store.save(base=..., metrics=...) as draft: write files into draft.path``; afterwards
        ``draft.version`` is the saved :class:`Version`.  An exception (or Ctrl-C) inside the block
        leaves no trace.  Saving never promotes.
        """
        name = self._next_name(now)
        target = self.root / name
        meta = {
            "name": name,
            "kind": self.kind,
            "created": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
            "base": base,
            "parent": parent,
            "metrics": _jsonable(dict(metrics or {})),
            "note": note,
        }
        with atomic_directory(target) as tmp:
            draft = Draft(name=name, path=tmp)
            yield draft
            (tmp / VERSION_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        draft.version = self._read(target)

    def promote(self, name: str) -> Version:
        """Make version ``name`` the current one (pushed on the promotion stack)."""
        version = self.get(name)
        stack = [n for n in self.history() if n != version.name] + [version.name]
        self._write_stack(stack)
        return version

    def rollback(self) -> Version | None:
        """Return to the version promoted before the current one; ``None`` means the base model.

        Raises :class:`CsassistError` when nothing is promoted (nothing to roll back).
        """
        stack = self.history()
        if not stack:
            raise CsassistError(f"no promoted {self.kind} in {self.root}: nothing to roll back")
        stack.pop()
        self._write_stack(stack)
        return self._read(self.root / stack[-1]) if stack else None

    # ------------------------------------------------------------------------------------ internals
    def _next_name(self, now: datetime | None) -> str:
        """``vNNNN-<UTC stamp>``, one above the highest number present (complete or not)."""
        highest = 0
        if self.root.is_dir():
            for child in self.root.iterdir():
                match = _VERSION_NAME.match(child.name)
                if match:
                    highest = max(highest, int(match.group(1)))
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        return f"v{highest + 1:04d}-{stamp}"

    def _pointer(self, name: str) -> str | None:
        """The version name held in a pointer file, if any."""
        file = self.root / name
        if not file.is_file():
            return None
        value = file.read_text(encoding="utf-8").strip()
        return value if _VERSION_NAME.match(value) else None

    def _write_stack(self, stack: list[str]) -> None:
        """``history.json`` first (the truth), then the ``current`` pointer; stale ``previous`` removed."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / HISTORY_FILE, json.dumps(stack, indent=1))
        if stack:
            atomic_write_text(self.root / CURRENT_FILE, stack[-1] + "\n")
        else:
            (self.root / CURRENT_FILE).unlink(missing_ok=True)
        (self.root / _LEGACY_PREVIOUS).unlink(missing_ok=True)

    def _read(self, path: Path) -> Version:
        """A :class:`Version` from ``version.json`` (or, for older versions, ``metrics.json``)."""
        meta: dict[str, Any] = {}
        for candidate in (VERSION_FILE, "metrics.json"):
            file = path / candidate
            if file.is_file():
                try:
                    loaded = json.loads(file.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue
                if isinstance(loaded, dict):
                    meta = loaded if candidate == VERSION_FILE else {"metrics": _headline(loaded)}
                    break
        return Version(
            name=path.name,
            path=path,
            kind=str(meta.get("kind") or self.kind),
            created=str(meta.get("created") or _stamp_of(path.name)),
            base=str(meta.get("base") or ""),
            parent=meta.get("parent") or None,
            metrics=dict(meta.get("metrics") or {}),
            note=str(meta.get("note") or ""),
        )


def intent_store(root: Path | None = None) -> ModelStore:
    """The store of intent models (fine-tuned encoders and refitted heads); base: the index's head."""
    return ModelStore(Path(root) if root else paths.intent_models_dir(), "intent model", marker="meta.json")


def adapter_store(root: Path | None = None) -> ModelStore:
    """The store of the generator's LoRA adapters; base: the bare generator."""
    return ModelStore(Path(root) if root else paths.adapters_dir(), "adapter", marker="adapter_config.json")


def _number(name: str) -> int:
    """The version number of ``vNNNN-...``."""
    match = _VERSION_NAME.match(name)
    return int(match.group(1)) if match else 0


def _stamp_of(name: str) -> str:
    """ISO time from a ``vNNNN-YYYYmmddTHHMMSSZ`` name ('' when it has none)."""
    try:
        return datetime.strptime(name.split("-", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).isoformat()
    except (IndexError, ValueError):
        return ""


def _headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of an older ``metrics.json`` (curves and per-intent tables left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Only the JSON-serialisable scalar entries: metadata stays small and always writable."""
    return {str(k): v for k, v in _headline(metrics).items() if not (isinstance(v, float) and v != v)}

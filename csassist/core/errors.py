"""Errors the engine raises on purpose: each carries a message a user can act on."""

from __future__ import annotations


class CsassistError(Exception):
    """Base class: the CLI prints ``str(error)`` without a traceback and exits non-zero."""


class ModelMissingError(CsassistError):
    """A model (embedder, intent model, generator) is not available; the message says what to install."""


class IndexUnusableError(CsassistError):
    """The index is missing, stale or built by another embedder/format: the message says to re-index."""


class KBError(CsassistError):
    """The knowledge base cannot be read at all (missing directory, nothing usable)."""


class DataError(CsassistError):
    """Training or evaluation data is unusable (too little, one class, unknown labels...)."""


class BackendError(CsassistError):
    """A generation backend failed (server unreachable, bad response); callers fall back to extractive."""

"""Reply generators: one small protocol, several backends.

Why a protocol: the pipeline, the TUI and the benchmarks only need "give me text pieces for these
chat messages, and stop when I say so".  Behind it sit:

* ``local``  — a transformers causal LM in this process (:mod:`csassist.core.reply.generation_local`).
* ``server`` — any OpenAI-compatible ``/v1/chat/completions`` endpoint with streaming
  (:mod:`csassist.core.reply.generation_server`): vLLM, llama.cpp server, Ollama.
* ``extractive`` — no model at all (:mod:`csassist.core.reply.extractive`); it is not a ``Generator``
  because it works from passages, not from a prompt, and the pipeline always runs it as slot 0.

:func:`load_generator` turns settings into a backend, or raises a :class:`CsassistError` whose
message says what to install or configure; the pipeline then falls back to extractive only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from csassist.core.errors import CsassistError
from csassist.core.types import CancelToken

if TYPE_CHECKING:  # pragma: no cover
    from csassist.settings import Settings

BACKENDS = ("local", "server", "extractive")


@runtime_checkable
class Generator(Protocol):
    """Streams the assistant's reply to chat ``messages`` as text pieces."""

    backend: str  # "local" | "server"
    model_id: str

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
        cancel: CancelToken,
    ) -> Iterator[str]:
        """Yield text pieces as they are produced; stop within one token after ``cancel.cancel()``.

        Closing the iterator early (``close()``, or a ``break`` in a for loop) also stops the work.
        Raises :class:`csassist.core.errors.BackendError` when the backend fails.
        """
        ...


def load_generator(settings: Settings) -> Generator | None:
    """The generator the settings ask for; ``None`` for the extractive-only backend.

    Raises :class:`CsassistError` (``ModelMissingError`` / ``BackendError``) with a message the user
    can act on when the model cannot be loaded or the server is not configured.
    """
    backend = settings.generation.backend.strip().lower() or "local"
    if backend == "extractive":
        return None
    if backend == "server":
        from csassist.core.reply.generation_server import ServerGenerator

        return ServerGenerator.from_settings(settings.generation)
    if backend == "local":
        from csassist.core.reply.generation_local import LocalGenerator

        local = LocalGenerator.from_settings(settings.generation)
        # Every prompt starts with a static system prefix: compute their KV caches now (a fraction of a
        # second each, while the app still shows extractive answers), not in the first customer's wait.
        for start in static_system_starts(settings):
            local.prime(start)
        return local
    raise CsassistError(f"unknown generation backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def static_system_starts(settings: Settings) -> list[str]:
    """The conversation-independent start of the system message of each prompt the strategies use.

    The ``free`` prompt's static prefix, the ``select`` opening prompt's whole system message and the
    ``rewrite`` prompt's system message up to its draft answer: each is a prefix of every prompt of
    its kind, so the generator's prefix cache serves it to every new conversation.
    """
    from csassist.core.reply.prompts import static_prefix
    from csassist.core.reply.rewrite import opening_messages, rewrite_messages

    company = settings.company
    return [
        static_prefix(company),
        opening_messages("", company)[0]["content"],
        rewrite_messages("", [], company)[0]["content"],
    ]

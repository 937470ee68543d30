"""A fake Generator for the pipeline's logic tests (no weights): scripted replies, counted tokens."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from csassist.core.errors import BackendError
from csassist.core.types import CancelToken

if TYPE_CHECKING:  # pragma: no cover - the real backend imports torch; tests load it lazily
    from csassist.core.reply.generation_local import LocalGenerator


class FakeGenerator:
    """Yields a scripted reply word by word; records calls and tokens produced after cancellation."""

    backend = "local"

    def __init__(
        self, replies: Sequence[str] = ("Sure, I can help with the refund.",), *, fail: bool = False, on_token=None
    ) -> None:  # type: ignore[no-untyped-def]
        self.model_id = "fake-model"
        self.replies = list(replies)
        self.fail = fail
        self.on_token = on_token
        self.calls: list[dict] = []  # type: ignore[type-arg]
        self.tokens = 0

    def stream(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, temperature: float, seed: int, cancel: CancelToken
    ) -> Iterator[str]:
        self.calls.append({"messages": messages, "temperature": temperature, "seed": seed})
        if self.fail:
            raise BackendError("cannot reach server at http://127.0.0.1:9 (connection refused)")
        reply = self.replies[(len(self.calls) - 1) % len(self.replies)]
        for i, word in enumerate(reply.split(" ")[:max_new_tokens]):
            if cancel.cancelled:
                return
            self.tokens += 1
            yield word if i == 0 else " " + word
            if self.on_token is not None:
                self.on_token(self.tokens)


@functools.lru_cache(maxsize=1)
def default_model_dir() -> Path:
    """The bundled SmolLM2 converted once per machine into a shared temp cache (not the test's home).

    Converting takes 5-50 s on a busy CPU, so tests share one converted copy across sessions; the
    conversion itself is exercised the first time this runs on a machine.
    """
    from csassist.core.reply.models import converted_dir, prepare_default

    cache = Path(tempfile.gettempdir()) / "csassist-test-cache"
    old = os.environ.get("CSASSIST_HOME")
    os.environ["CSASSIST_HOME"] = str(cache)
    try:
        prepare_default()
        return converted_dir()
    finally:
        if old is None:
            del os.environ["CSASSIST_HOME"]
        else:
            os.environ["CSASSIST_HOME"] = old


@functools.lru_cache(maxsize=1)
def real_local_generator() -> LocalGenerator:
    """The real local backend on the default model, loaded once per test process."""
    from csassist.core.knowledge.embedder import configure_threads
    from csassist.core.reply.generation_local import LocalGenerator
    from csassist.core.reply.models import load_causal_lm

    configure_threads(1)
    return LocalGenerator(load_causal_lm(str(default_model_dir()), adapter="none"))

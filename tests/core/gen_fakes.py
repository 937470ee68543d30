"""A fake Generator for the pipeline's logic tests (no weights): scripted replies, counted tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from csassist.core.errors import BackendError
from csassist.core.types import CancelToken


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

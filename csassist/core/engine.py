"""The engine as its clients see it: a typed protocol at the core/UI boundary.

Why a protocol: the terminal app, ``csassist suggest`` and the benchmarks drive the engine through
the same five calls, and the UI tests drive a deterministic fake through them too.  Writing those
calls down once lets mypy check every client against both, and lets one contract test
(``tests/test_engine_contract.py``, run against the real :class:`~csassist.core.pipeline.Assistant`
and the fake) pin the behaviour the UI relies on -- slot 0 first and finished, exactly one
``done`` update per slot, cancellation honoured -- instead of each test assuming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from csassist.core.reply.generation import Generator
from csassist.core.types import Analysis, CancelToken, Message, Passage, SuggestionUpdate


@dataclass(frozen=True)
class EngineInfo:
    """What is running, for the status bar, ``csassist suggest --json`` and ``csassist models``.

    Every field is display text; ``""`` means "nothing to show" (the status bar skips it).
    """

    backend: str = "extractive"
    device: str = "-"
    generator: str = "none (extractive only)"
    embedder: str = "none"
    intent_model: str = "none"
    index: str = "none"

    def as_dict(self) -> dict[str, str]:
        """The non-empty fields in declaration order (JSON output, the status bar)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v != ""}


@runtime_checkable
class Engine(Protocol):
    """Analyse a customer turn, find KB passages, stream suggested replies (see ``core/pipeline.py``).

    Calls may come from worker threads; ``suggest`` for a conversation cancels that conversation's
    previous call.  Nothing here raises for missing models: an engine without an index retrieves
    nothing, one without an intent model answers an empty intent, one without a generator streams
    only the extractive slot.
    """

    @property
    def warnings(self) -> Sequence[str]:
        """Problems met while loading or running (shown once to the agent), never fatal."""
        ...

    @property
    def intent_labels(self) -> Sequence[str]:
        """Every intent the engine can answer (for the agent's intent correction); empty without a model."""
        ...

    def analyze(self, text: str, history: Sequence[Message] = ()) -> Analysis:
        """Intent, entities and urgency of the customer's turn ending in ``text``."""
        ...

    def retrieve(self, text: str, k: int | None = None, history: Sequence[Message] = ()) -> list[Passage]:
        """The best KB passages for the turn ending in ``text`` (best first, at most ``k``)."""
        ...

    def suggest(
        self,
        message: Message,
        history: Sequence[Message],
        analysis: Analysis | None,
        passages: Sequence[Passage],
        cancel: CancelToken,
        *,
        n: int | None = None,
        seed: int = 0,
    ) -> Iterator[SuggestionUpdate]:
        """Stream snapshots of ``n`` suggestion slots: slot 0 (extractive) first and finished at once,
        then each generated slot ending with exactly one ``done=True`` update."""
        ...

    def describe(self) -> EngineInfo:
        """What is running (backend, device, model names)."""
        ...

    def attach_generator(self, generator: Generator | None) -> None:
        """Use ``generator`` for later suggestions (the app loads the reply model after the rest)."""
        ...

"""One shape for "how far along is this long job": index builds, model conversion, fine-tuning.

Why one shape: a progress bar in the CLI, a notification in the TUI and a line in a benchmark log all
want the same three things (which phase, how much of how much, a few numbers such as the loss), and
with one frozen dataclass every job can feed every display without an adapter per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgressEvent:
    """A snapshot of a long job.

    ``phase`` names the step ("embed", "convert", "train", "eval", ...); ``done``/``total`` count its
    units (``total`` is ``None`` while unknown); ``message`` is a line a person may read; ``metrics``
    carries numbers the display may show (``loss``, ``val_loss``, ``val_accuracy``, ``epoch``...).
    """

    phase: str
    done: int = 0
    total: int | None = None
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], or ``None`` while the total is unknown."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


#: What every long job accepts as its ``progress`` argument.
ProgressCallback = Callable[[ProgressEvent], None]

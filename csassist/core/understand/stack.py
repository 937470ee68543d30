"""Load the understanding components that live beside one index: retriever, intent model, OOS detector.

The CLI commands (analyze, eval, search), the assistant and the benchmark must combine them the same
way -- the detector needs the retriever's KB similarity and the retriever needs the intent model's
distribution for its boost -- so the wiring lives here once.  Missing pieces degrade: without an
index there is no retriever (and the detector runs without its KB feature); without a detector the
intent model keeps its own softmax verdict; ``notes`` says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csassist.core.errors import CsassistError
from csassist.core.knowledge.embedder import Encoder
from csassist.core.types import IntentPrediction
from csassist.core.understand.intent import IntentModel


@dataclass
class Understanding:
    """What one index offers for understanding a message; any part may be ``None``."""

    retriever: Any = None
    intent_model: IntentModel | None = None
    notes: list[str] = field(default_factory=list)


def load_understanding(index_dir: Path, encoder: Encoder, *, intent_model: IntentModel | None) -> Understanding:
    """Open the index at ``index_dir`` and give ``intent_model`` (the one in use) its OOS detector."""
    from csassist.core.knowledge.retrieval import Retriever
    from csassist.core.understand.oos import load_oos_model

    out = Understanding()
    try:
        out.retriever = Retriever.open(Path(index_dir), encoder)
    except CsassistError as exc:
        out.notes.append(f"no usable KB index ({exc})")
    model = intent_model
    if model is not None:
        similarity = out.retriever.best_similarity if out.retriever is not None else None
        try:
            model = load_oos_model(model, Path(index_dir), encoder, similarity)
        except CsassistError as exc:
            out.notes.append(f"out-of-scope detector unusable ({exc}); using the intent model's own cut-off")
    out.intent_model = model
    return out


def intent_distribution(prediction: IntentPrediction | None) -> dict[str, float]:
    """The prediction's candidates as ``{intent: probability}`` (empty when out of scope or absent)."""
    if prediction is None or prediction.out_of_scope:
        return {}
    return {s.intent: s.probability for s in prediction.top}

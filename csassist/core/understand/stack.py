"""Load the understanding components that live beside one index: retriever, intent model, OOS detector.

The CLI commands (analyze, eval, search), the assistant and the benchmark must combine them the same
way -- the detector needs the retriever's KB similarity and the retriever needs the intent model's
distribution for its boost -- so the wiring lives here once.  Missing pieces degrade: without an
index there is no retriever (and the detector runs without its KB feature); without a detector the
intent model keeps its own softmax verdict; ``notes`` says what is missing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csassist.core.errors import CsassistError
from csassist.core.knowledge.embedder import Encoder
from csassist.core.types import IntentPrediction
from csassist.core.understand.intent import IntentModel
from csassist.core.understand.lexical import LexicalVote


@dataclass
class Understanding:
    """What one index offers for understanding a message; any part may be ``None``."""

    retriever: Any = None
    intent_model: IntentModel | None = None
    notes: list[str] = field(default_factory=list)


def load_understanding(index_dir: Path, encoder: Encoder, *, intent_model: IntentModel | None) -> Understanding:
    """Open the index at ``index_dir`` and give ``intent_model`` (the one in use) its detector and KB vote."""
    from csassist.core.knowledge.retrieval import Retriever

    out = Understanding()
    try:
        out.retriever = Retriever.open(Path(index_dir), encoder)
    except CsassistError as exc:
        out.notes.append(f"no usable KB index ({exc})")
    if intent_model is not None:
        out.intent_model = attach_kb(intent_model, Path(index_dir), encoder, out.retriever, notes=out.notes)
    return out


def attach_kb(
    model: IntentModel, index_dir: Path, encoder: Encoder, retriever: Any, *, notes: list[str] | None = None
) -> IntentModel:
    """``model`` with what the index beside it offers: the OOS detector, the KB's vote and the lexical vote
    (word/character n-grams, fitted beside the index head) on the ranking.

    Without a retriever the detector runs without its KB feature and there is no vote.  A detector
    that cannot be loaded leaves the model's own cut-off and is said in ``notes``; without ``notes``
    the ``CsassistError`` is raised for the caller to report.
    """
    from csassist.core.understand.kb_vote import retriever_vote
    from csassist.core.understand.oos import load_oos_model

    similarity = retriever.best_similarity if retriever is not None else None
    try:
        model = load_oos_model(model, Path(index_dir), encoder, similarity)
    except CsassistError as exc:
        if notes is None:
            raise
        notes.append(f"out-of-scope detector unusable ({exc}); using the intent model's own cut-off")
    if retriever is not None:
        model = dataclasses.replace(model, kb_vote=retriever_vote(retriever), reading=retriever.reading)
    try:
        lexical = LexicalVote.load(Path(index_dir) / "intent")
    except CsassistError as exc:
        if notes is None:
            raise
        notes.append(str(exc))
        lexical = None
    if lexical is not None and lexical.labels == tuple(model.labels):  # a model on other intents keeps its own ranking
        model = dataclasses.replace(model, lexical=lexical)
    return model


def intent_distribution(prediction: IntentPrediction | None) -> dict[str, float]:
    """The model's own candidates as ``{intent: probability}``, for the retrieval boost (empty when OOS or absent).

    ``own_top`` (before the KB's vote) when there is one: the boost must add the classifier's opinion
    to the ranking, not the ranking's own echo.
    """
    if prediction is None or prediction.out_of_scope:
        return {}
    return {s.intent: s.probability for s in (prediction.own_top or prediction.top)}

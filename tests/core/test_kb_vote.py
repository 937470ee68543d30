"""The KB's vote on the intent ranking: the votes, the mix, and what it may and may not change."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from csassist.core.understand.intent import IntentModel, LinearHead
from csassist.core.understand.kb_vote import KBVote, blend, vote_matrix
from csassist.core.understand.stack import intent_distribution
from tests.fakes import FakeEncoder

LABELS = ("cancel_order", "refund_status", "track_order")


def test_votes_decay_by_rank_split_over_intents_and_ignore_unknown() -> None:
    hits: list[list[tuple[str, ...]]] = [[("track_order",), ("refund_status", "cancel_order"), ("no_such_intent",)], [], [("unknown",)]]
    votes = vote_matrix(hits, LABELS, depth=5, decay=0.5)
    # rank 0: 1.0 to track_order; rank 1: 0.5 split in two; rank 2 names an unknown intent: nothing
    assert votes[0] == pytest.approx(np.array([0.25, 0.25, 1.0]) / 1.5)
    assert votes[1].sum() == 0 and votes[2].sum() == 0  # no articles, or none naming a known intent
    assert vote_matrix([[("cancel_order",), ("track_order",)]], LABELS, depth=1)[0] == pytest.approx([1, 0, 0])


def test_blend_mixes_only_rows_with_votes() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    votes = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    out = blend(probs, votes, 0.5)
    assert out[0] == pytest.approx([0.3, 0.15, 0.55]) and out[1] == pytest.approx(probs[1])
    assert out.sum(axis=1) == pytest.approx([1.0, 1.0])


class _FixedHead(LinearHead):
    """A head whose probabilities ignore the embedding (what the test wants the model to believe)."""

    def __init__(self, probs: Sequence[float], dimension: int) -> None:
        super().__init__(LABELS, np.zeros((len(LABELS), dimension), np.float32), np.zeros(len(LABELS), np.float32))
        self.fixed = np.asarray(probs, dtype=np.float64)

    def probs(self, embeddings: np.ndarray) -> np.ndarray:
        return np.tile(self.fixed, (len(embeddings), 1))


def _model(probs: Sequence[float], threshold: float, searched: list[list[str]]) -> IntentModel:
    encoder = FakeEncoder()

    def search(texts: Sequence[str]) -> list[list[tuple[str, ...]]]:
        searched.append(list(texts))
        return [[("track_order",), ("track_order",)] for _ in texts]

    model = IntentModel(encoder, _FixedHead(probs, encoder.dimension), threshold, "head-test")
    return dataclasses.replace(model, kb_vote=KBVote(search=search, weight=0.5))


def test_the_vote_reorders_candidates_but_not_the_verdict() -> None:
    searched: list[list[str]] = []
    uncertain = _model([0.45, 0.35, 0.20], threshold=0.3, searched=searched)
    pred = uncertain.predict("the courier app says delivered but nothing is at my door")
    assert [s.intent for s in pred.top] == ["track_order", "cancel_order", "refund_status"]
    assert pred.top[0].probability == pytest.approx(0.6) and not pred.out_of_scope
    assert searched == [["the courier app says delivered but nothing is at my door"]]
    # Retrieval is boosted with the model's own candidates, not with the ranking the articles voted on.
    assert [s.intent for s in pred.own_top] == ["cancel_order", "refund_status", "track_order"]
    assert intent_distribution(pred) == pytest.approx({"cancel_order": 0.45, "refund_status": 0.35, "track_order": 0.2})

    # The model's own best (0.45) is below its threshold: still out of scope, whatever the KB says.
    doubtful = _model([0.45, 0.35, 0.20], threshold=0.5, searched=[])
    assert doubtful.predict("something vague").out_of_scope

    # Empty messages are not searched and keep the empty prediction.
    searched.clear()
    empty = uncertain.predict("   ")
    assert empty.top == () and empty.out_of_scope and searched == []


def test_without_a_vote_the_model_is_unchanged() -> None:
    plain = dataclasses.replace(_model([0.45, 0.35, 0.20], 0.3, []), kb_vote=None)
    pred = plain.predict("anything")
    assert pred.top[0].intent == "cancel_order" and pred.own_top == ()


def test_a_failing_search_loses_only_the_vote() -> None:
    def broken(texts: Sequence[str]) -> list[list[tuple[str, ...]]]:
        raise OSError("index replaced under us")

    model = dataclasses.replace(_model([0.45, 0.35, 0.20], 0.3, []), kb_vote=KBVote(search=broken))
    pred = model.predict("where is my order")
    assert pred.top[0].intent == "cancel_order" and pred.top[0].probability == pytest.approx(0.45)


@pytest.mark.real_model
def test_real_index_vote_pulls_towards_the_retrieved_articles_intent(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    """Built as ``csassist index`` builds it; the vote is attached wherever the understanding is loaded."""
    from csassist.core.understand.stack import load_understanding
    from csassist.core.workspace import Workspace
    from csassist.settings import Settings

    kb = tmp_path / "kb"
    (kb / "articles").mkdir(parents=True)
    (kb / "articles" / "missing.md").write_text(
        "---\nid: missing-parcel\ntitle: My parcel says delivered but is not here\nintents: [missing_delivery]\n---\n"
        "If the courier's app shows your parcel as delivered but there is no box at your door, check with "
        "neighbours and your safe place first, then tell us within 48 hours and we open a courier investigation.\n",
        encoding="utf-8",
    )
    (kb / "articles" / "tracking.md").write_text(
        "---\nid: tracking\ntitle: Tracking your order\nintents: [track_order]\n---\n"
        "Your tracking link arrives by email when the order leaves the warehouse.\n",
        encoding="utf-8",
    )
    rows = ["text,intent"] + [f"{t},track_order" for t in ("where is my order", "track my parcel",
                                                          "when will my order arrive", "tracking link please")]
    rows += [f"{t},missing_delivery" for t in ("my parcel never came", "order not received",
                                               "package lost in the post", "it never arrived")]
    (kb / "intents.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    index = tmp_path / "index"
    workspace = Workspace(Settings())
    workspace.build_index(kb, index, encoder=real_encoder, rebuild=True)
    parts = load_understanding(index, real_encoder, intent_model=workspace.intent_model(real_encoder, index))
    model = parts.intent_model
    assert model is not None and model.kb_vote is not None
    text = "the courier app says it was left at my front door but there is no box anywhere"
    scored = model.scores([text])
    own = dict(zip(model.labels, scored.probs[0], strict=True))
    ranked = dict(zip(model.labels, model.ranking_probs([text], scored)[0], strict=True))
    assert parts.retriever.search(text, 1)[0].article_id == "missing-parcel"
    assert ranked["missing_delivery"] > own["missing_delivery"]

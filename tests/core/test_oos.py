"""The out-of-scope detector: fitting with off-topic negatives, save/load, verdict, reason, neighbours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csassist.core.errors import DataError, ModelMissingError
from csassist.core.learn.intent_head import fit_intent_head
from csassist.core.learn.oos_fit import choose_oos_threshold, fit_oos_detector
from csassist.core.types import IntentExample
from csassist.core.understand.intent_format import load_head
from csassist.core.understand.oos import (
    OOSAwareIntentModel,
    OOSDetector,
    load_off_topic,
    load_oos_model,
)
from tests.core.test_intent import TOPICS
from tests.fakes import FakeEncoder

OFF_TOPIC = [
    "what is the weather tomorrow", "tell me a joke", "who won the football game", "recipe for pancakes",
    "are you hiring warehouse staff", "buy cheap crypto now", "my gym membership renewal", "best pizza nearby",
    "translate this poem into french", "what time is sunset today",
]


def _examples() -> list[IntentExample]:
    return [IntentExample(t, label) for label, texts in TOPICS.items() for t in texts] + [
        IntentExample(t, "oos") for t in OFF_TOPIC
    ]


def test_threshold_keeps_real_questions_in_scope() -> None:
    p_in = np.array([0.05, 0.1, 0.2, 0.3, 0.9])
    p_neg = np.array([0.5, 0.8, 0.95])
    assert choose_oos_threshold(p_in, p_neg, target_flagged=0.2) == pytest.approx(0.5)  # 0.9 is the 1 in 5 allowed
    assert choose_oos_threshold(p_in, p_neg, target_flagged=0.0) > 0.9


def test_fit_save_load_and_explain(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    fit_intent_head(_examples(), fake_encoder, tmp_path / "index" / "intent")
    report = fit_oos_detector(_examples(), fake_encoder, tmp_path / "index" / "oos",
                              kb_similarity=lambda v: np.full(len(v), 0.3))
    assert report["in_scope_examples"] == 18 and report["off_topic_examples"] == len(OFF_TOPIC)
    assert 0.0 <= report["cv_in_scope_flagged"] <= 0.2 and report["kb_feature"]
    head = load_head(tmp_path / "index" / "intent", fake_encoder)
    model = load_oos_model(head, tmp_path / "index", fake_encoder)
    assert isinstance(model, OOSAwareIntentModel) and model.model_id == head.model_id
    assert model.labels == head.labels
    pred = model.predict("where is my parcel, it has not arrived")
    assert pred.oos_score is not None and 0.0 <= pred.oos_score <= 1.0
    assert pred.reason.startswith(("in scope", "out of scope")) and "nearest example" in pred.reason
    assert pred.neighbours and all(n.intent == pred.top[0].intent for n in pred.neighbours)
    sims = [n.similarity for n in pred.neighbours]
    assert sims == sorted(sims, reverse=True)
    empty = model.predict("   ")
    assert empty.top == () and empty.out_of_scope
    # An index without a detector leaves the model as it was.
    assert load_oos_model(head, tmp_path / "elsewhere", fake_encoder) is head
    # The linear off-topic probe is saved with the detector and scores negatives above questions.
    detector = OOSDetector.load(tmp_path / "index" / "oos", fake_encoder)
    vectors = fake_encoder.encode(["where is my parcel, it has not arrived", OFF_TOPIC[1], OFF_TOPIC[5]])
    scores = detector.probe(vectors)
    assert np.all((scores >= 0) & (scores <= 1)) and scores[0] < min(scores[1], scores[2])
    assert model.detector is not None and np.allclose(model.detector.probe(vectors), scores)
    # The word probe is saved with it too: the shop's off-topic words score above a question's.
    assert detector.words is not None and model.detector.words is not None
    words = detector.word_probe(["where is my parcel, it has not arrived", "buy cheap crypto now please"])
    assert np.all((words >= 0) & (words <= 1)) and words[0] < words[1]
    assert detector.word_probe([]).shape == (0,)
    crypto = model.predict("buy cheap crypto now")
    assert "worded like the shop's off-topic traffic" in crypto.reason  # the reason says what the words said
    # A damaged word probe is refused with advice, not misread.
    (tmp_path / "index" / "oos" / "words" / "lexical.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelMissingError):
        OOSDetector.load(tmp_path / "index" / "oos", fake_encoder)
    # A detector from another embedder is refused with advice.
    with pytest.raises(ModelMissingError, match="csassist index"):
        OOSDetector.load(tmp_path / "index" / "oos", FakeEncoder(model_id="other"))


def test_off_topic_file_is_read_as_oos(tmp_path: Path) -> None:
    assert load_off_topic(tmp_path) == []
    (tmp_path / "offtopic.csv").write_text("text,intent\nare you hiring,oos\n,oos\nbuy crypto,spam\n", encoding="utf-8")
    found = load_off_topic(tmp_path)
    assert [(e.text, e.intent) for e in found] == [("are you hiring", "oos"), ("buy crypto", "oos")]


def test_needs_negatives(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    in_scope = [e for e in _examples() if e.intent != "oos"]
    with pytest.raises(DataError, match="offtopic"):
        fit_oos_detector(in_scope, fake_encoder, tmp_path / "oos")


@pytest.mark.real_model
def test_real_detector_flags_off_topic_and_keeps_questions(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    fit_intent_head(_examples(), real_encoder, tmp_path / "intent")
    fit_oos_detector(_examples(), real_encoder, tmp_path / "oos")
    model = load_oos_model(load_head(tmp_path / "intent", real_encoder), tmp_path, real_encoder)
    preds = model.predict_batch(["my parcel still hasn't come, where is it?", "can I get my money back please",
                                 "what's the weather going to be like on saturday", "tell me a funny joke"])
    assert [p.out_of_scope for p in preds] == [False, False, True, True]
    assert preds[0].top[0].intent == "track_order" and preds[0].neighbours[0].intent == "track_order"
    off_topic, question = preds[2].oos_score, preds[0].oos_score
    assert "away" in preds[2].reason and off_topic is not None and question is not None and off_topic > question


def test_detector_of_an_older_format_is_refused_with_advice(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    """A detector fitted before the probe feature existed has fewer features: re-index, never misread it."""
    import json

    fit_oos_detector(_examples(), fake_encoder, tmp_path / "oos")
    meta_path = tmp_path / "oos" / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format"], meta["features"] = 1, meta["features"][:-1]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelMissingError, match="another format; run `csassist index`"):
        OOSDetector.load(tmp_path / "oos", fake_encoder)

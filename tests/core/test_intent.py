"""The intent head: fit, save, load, predict, OOS threshold, bad data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from csassist.core.errors import DataError, ModelMissingError
from csassist.core.learn.intent_head import choose_threshold, fit_intent_head
from csassist.core.learn.intent_promotion import load_intent_model
from csassist.core.types import IntentExample
from csassist.core.understand.intent_data import load_labelled_file
from csassist.core.understand.intent_format import load_head

TOPICS = {
    "track_order": ["where is my parcel", "track my order please", "my package has not arrived", "parcel tracking status",
                    "when will my order arrive", "delivery still not here"],
    "refund": ["i want my money back", "refund my purchase", "please refund the payment", "money back for the item",
               "how do i get a refund", "refund status of my return"],
    "change_address": ["change my delivery address", "update shipping address", "wrong address on order",
                       "new address for delivery", "edit the address please", "ship to another address"],
}
OOS = ["what is the weather tomorrow", "tell me a joke", "who won the football game", "recipe for pancakes"]


def _examples(with_oos: bool = True) -> list[IntentExample]:
    out = [IntentExample(text=t, intent=label) for label, texts in TOPICS.items() for t in texts]
    if with_oos:
        out += [IntentExample(text=t, intent="oos") for t in OOS]
    return out


def test_fit_save_load_predict(fake_encoder, tmp_path: Path) -> None:
    report = fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    assert report["intents"] == 3 and report["oos_examples"] == 4
    assert 0.0 < report["threshold"] < 1.0
    assert report["oos_recall"] is not None
    meta = json.loads((tmp_path / "intent" / "meta.json").read_text())
    assert meta["labels"] == sorted(TOPICS)
    model = load_head(tmp_path / "intent", fake_encoder)
    pred = model.predict("where is my parcel, it has not arrived")
    assert pred.top[0].intent == "track_order"
    assert len(pred.top) == 3
    assert sum(s.probability for s in pred.top) <= 1.0 + 1e-6
    assert [s.probability for s in pred.top] == sorted((s.probability for s in pred.top), reverse=True)
    batch = model.predict_batch(["refund my money back please", "change my address"])
    assert [p.top[0].intent for p in batch] == ["refund", "change_address"]


def test_threshold_without_oos_rows(fake_encoder, tmp_path: Path) -> None:
    report = fit_intent_head(_examples(with_oos=False), fake_encoder, tmp_path / "i")
    assert report["oos_recall"] is None
    assert 1.5 / 3 * 0.99 <= report["threshold"] <= 0.5 + 1e-9


def test_choose_threshold_separates_oos() -> None:
    in_best = np.array([0.9, 0.8, 0.85, 0.7, 0.95])
    correct = np.array([True, True, True, False, True])
    oos_best = np.array([0.3, 0.4, 0.35])
    t, achieved = choose_threshold(in_best, correct, oos_best, 10)
    assert 0.4 < t <= 0.8
    assert achieved["oos_recall"] == 1.0


@pytest.mark.parametrize("text", ["", "   ", "😀😀🎉", "Bestellung 204817 где мой заказ 注文", "refund " * 20000])
def test_bad_input_never_nan(fake_encoder, tmp_path: Path, text: str) -> None:
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    pred = load_head(tmp_path / "intent", fake_encoder).predict(text)
    assert all(not math.isnan(s.probability) for s in pred.top)
    if not text.strip():
        assert pred.top == () and pred.out_of_scope


def test_one_example_per_class(fake_encoder, tmp_path: Path) -> None:
    examples = [IntentExample(text=texts[0], intent=label) for label, texts in TOPICS.items()]
    report = fit_intent_head(examples, fake_encoder, tmp_path / "i")
    assert report["threshold_tuned"] is False
    assert load_head(tmp_path / "i", fake_encoder).predict("refund my purchase").top


def test_single_class_is_clear_error(fake_encoder, tmp_path: Path) -> None:
    examples = [IntentExample(text=t, intent="refund") for t in TOPICS["refund"]]
    with pytest.raises(DataError, match="only one intent"):
        fit_intent_head(examples, fake_encoder, tmp_path / "i")
    with pytest.raises(DataError, match="oos"):
        fit_intent_head([IntentExample(text="x", intent="oos")], fake_encoder, tmp_path / "i")


def test_load_intent_model_missing_says_run_index(tmp_path: Path, fake_encoder) -> None:
    with pytest.raises(ModelMissingError, match="csassist index"):
        load_intent_model(tmp_path / "nowhere", fake_encoder)


def test_load_intent_model_refuses_other_encoder(fake_encoder, tmp_path: Path) -> None:
    from tests.fakes import FakeEncoder

    fit_intent_head(_examples(), fake_encoder, tmp_path / "idx" / "intent")
    assert load_intent_model(tmp_path / "idx", fake_encoder).predict("refund").top
    with pytest.raises(ModelMissingError, match="csassist index"):
        load_intent_model(tmp_path / "idx", FakeEncoder(model_id="other"))


def test_labelled_file_formats(tmp_path: Path) -> None:
    csv_path = tmp_path / "b.csv"
    csv_path.write_text("text,category\nhello there,greet\n,empty\nbye now,leave\n", encoding="utf-8")
    examples, problems = load_labelled_file(csv_path)
    assert [e.intent for e in examples] == ["greet", "leave"]
    assert problems and ":3:" in problems[0]
    jl = tmp_path / "a.jsonl"
    jl.write_text('{"text": "hi", "label": "greet"}\nnot json\n{"text": "x", "label": "oos"}\n', encoding="utf-8")
    examples, problems = load_labelled_file(jl)
    assert [e.intent for e in examples] == ["greet", "oos"] and ":2:" in problems[0]
    bad = tmp_path / "c.csv"
    bad.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="header"):
        load_labelled_file(bad)


@pytest.mark.real_model
def test_real_encoder_head(real_encoder, tmp_path: Path) -> None:
    report = fit_intent_head(_examples(), real_encoder, tmp_path / "intent")
    model = load_intent_model(tmp_path, real_encoder)
    assert report["encoder"] == real_encoder.model_id
    assert model.predict("I'd like a refund for the broken lamp").top[0].intent == "refund"
    assert model.predict("my parcel still hasn't arrived").top[0].intent == "track_order"
    assert model.predict("what's the weather like in Paris").out_of_scope

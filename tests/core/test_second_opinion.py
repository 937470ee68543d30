"""A fine-tuned model's second opinion: the mix, the weight chosen on validation, saving and loading it.

The real path (MiniLM fine-tuned, then mixed) runs in test_intent_finetune's tiny real run; these use
the hashed bag-of-words fake so the logic is checked in milliseconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from csassist.core.errors import ModelMissingError
from csassist.core.learn.intent_head import fit_linear_head
from csassist.core.learn.second_opinion import WEIGHTS, FrozenHead, choose_weight, second_opinion_for
from csassist.core.understand.intent import IntentModel, LinearHead, SecondOpinion, mix_probs
from csassist.core.understand.intent_encoder import TransformerEncoder
from csassist.core.understand.intent_format import read_model, save_model
from tests.fakes import FakeEncoder

LABELS = ("refund", "track")
TEXTS = ["refund my money please", "I want a refund", "money back now", "where is my parcel",
         "track my order", "parcel still not here"]
Y = np.array([0, 0, 0, 1, 1, 1])


def _head(encoder: FakeEncoder) -> LinearHead:
    return fit_linear_head(np.asarray(encoder.encode(TEXTS)), Y, LABELS)


def test_mix_is_a_linear_pool_and_weight_zero_is_the_model_alone() -> None:
    own = np.array([[0.9, 0.1], [0.2, 0.8]])
    other = np.array([[0.1, 0.9], [0.0, 1.0]])
    assert mix_probs(own, other, 0.0) is own
    mixed = mix_probs(own, other, 0.25)
    assert np.allclose(mixed, 0.75 * own + 0.25 * other) and np.allclose(mixed.sum(1), 1.0)


def test_weight_is_chosen_on_validation_and_zero_when_the_other_head_does_not_help() -> None:
    y = np.array([0, 1, 1, 0])
    own = np.array([[0.6, 0.4], [0.55, 0.45], [0.2, 0.8], [0.9, 0.1]])  # wrong on row 1, barely
    helpful = np.array([[0.7, 0.3], [0.1, 0.9], [0.3, 0.7], [0.8, 0.2]])
    weight, table = choose_weight(own, helpful, y)
    assert weight > 0 and [r["weight"] for r in table] == list(WEIGHTS)
    assert next(r for r in table if r["weight"] == weight)["val_accuracy"] == 1.0 > table[0]["val_accuracy"]
    useless = np.full_like(own, 0.5)  # a flat opinion: never more accurate, only a worse log-loss
    wrong = own[:, ::-1]
    assert choose_weight(own[[0, 2, 3]], useless[[0, 2, 3]], y[[0, 2, 3]])[0] == 0.0
    assert choose_weight(own[[0, 2, 3]], wrong[[0, 2, 3]], y[[0, 2, 3]])[0] == 0.0


def test_second_opinion_for_reports_alone_and_mixed() -> None:
    encoder = FakeEncoder()
    frozen = FrozenHead(encoder, _head(encoder), 0.1)
    flat = np.full((len(TEXTS), 2), 0.5)  # a fine-tuned model that learnt nothing: the frozen head decides
    second, report = second_opinion_for(frozen, flat, TEXTS, Y)
    assert second is not None and second.weight == report["weight"] > 0
    assert report["val_accuracy_mixed"] == 1.0 > report["val_accuracy_alone"] and report["encoder"] == "fake-encoder"


def test_model_mixes_its_probabilities_and_says_so(tmp_path: Path) -> None:
    own_encoder, configured = FakeEncoder(model_id="tuned"), FakeEncoder(dimension=32, model_id="configured")
    model = IntentModel(own_encoder, _head(own_encoder), 0.3, "finetuned", origin="store", version="v0002",
                        report={"kind": "finetuned"})
    second = SecondOpinion(configured, _head(configured), 0.4)
    mixed = dataclasses.replace(model, second_opinion=second)
    texts = ["refund please", "where is the parcel"]
    expected = 0.6 * model.scores(texts).probs + 0.4 * second.head.probs(configured.encode(texts))
    assert np.allclose(mixed.scores(texts).probs, expected)
    assert mixed.describe() == ("fine-tuned v0002 (intent model store) mixed 60%/40% with a frozen head on configured")
    assert mixed.short_name() == "v0002 fine-tuned + frozen head"
    assert mixed.predict("").top == ()


def test_bad_second_opinions_are_refused() -> None:
    encoder = FakeEncoder()
    with pytest.raises(ModelMissingError, match="between 0 and 1"):
        SecondOpinion(encoder, _head(encoder), 1.0)
    other = LinearHead(("a", "b", "c"), np.zeros((3, 64), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ModelMissingError, match="labels differ"):
        IntentModel(encoder, _head(encoder), 0.3, "m", second_opinion=SecondOpinion(encoder, other, 0.5))


@pytest.mark.real_model
def test_saved_with_the_model_and_read_only_with_the_same_embedder(tmp_path: Path, real_encoder) -> None:
    from transformers import AutoModel, AutoTokenizer

    from csassist.core.knowledge.embedder import resolve_embedder_path

    _, path = resolve_embedder_path(None)
    body = TransformerEncoder(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), "finetuned:x")
    head = fit_linear_head(np.asarray(body.encode(TEXTS)), Y, LABELS)
    model = IntentModel(body, head, 0.3, "finetuned", origin="store", version="v0001", report={"kind": "finetuned"},
                        second_opinion=SecondOpinion(real_encoder, _head(real_encoder), 0.3))  # type: ignore[arg-type]
    save_model(model, tmp_path / "v0001")
    again = read_model(tmp_path / "v0001", real_encoder, origin="store", version="v0001")
    assert again.second_opinion is not None and again.second_opinion.weight == pytest.approx(0.3)
    texts = ["I want my money back", "parcel not here"]
    assert np.allclose(again.scores(texts).probs, model.scores(texts).probs, atol=1e-5)
    with pytest.raises(ModelMissingError, match="second-opinion head was fitted with embedder"):
        read_model(tmp_path / "v0001", FakeEncoder(dimension=384, model_id="another-embedder"), origin="store")

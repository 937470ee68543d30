"""Intent model versions: validation split, schedule, time budget, one format, promotion and the refit.

The real tiny run (MiniLM, a few steps) checks the whole path: train -> save a store version ->
promote -> what ``load_intent_model`` answers with -> refit with corrections on top of it -> rollback.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from csassist.core.errors import DataError
from csassist.core.learn import intent_finetune as ft
from csassist.core.learn import intent_promotion
from csassist.core.learn.intent_eval import evaluate_intents
from csassist.core.learn.intent_head import fit_intent_head
from csassist.core.learn.intent_promotion import load_intent_model
from csassist.core.learn.second_opinion import WEIGHTS
from csassist.core.learn.store import intent_store
from csassist.core.types import IntentExample
from csassist.core.understand.intent import ORIGIN_INDEX, ORIGIN_STORE
from csassist.core.understand.intent_format import read_model
from tests.core.test_intent import OOS, TOPICS, _examples
from tests.fakes import FakeEncoder


def test_split_validation_is_stratified() -> None:
    ex = [IntentExample(text=f"{label} {i}", intent=label) for label in "abc" for i in range(10)]
    ex.append(IntentExample(text="single", intent="d"))
    train, val = ft.split_validation(ex, 0.2, seed=1)
    assert sorted(e.intent for e in val) == ["a", "a", "b", "b", "c", "c"]
    assert any(e.intent == "d" for e in train)
    assert len(train) + len(val) == len(ex)


def test_schedule_warmup_then_decay() -> None:
    plan = {"total": 100}
    f = ft._lr_lambda(0.1, plan, "cosine")
    assert f(0) < f(5) < f(9) <= 1.0
    assert f(10) == pytest.approx(1.0) and f(99) < 0.01
    plan["total"] = 50  # a time budget shrinks the plan: decay ends earlier
    assert f(49) < 0.01
    assert ft._lr_lambda(0.0, {"total": 10}, "linear")(5) == pytest.approx(0.5)


def test_head_init_auto_probes_small_data_and_starts_large_data_at_random() -> None:
    from collections import Counter

    small = Counter({"a": 20, "b": 30, "c": 25, "oos": 500})  # oos rows never count
    large = Counter({"a": 120, "b": 130, "c": 90})
    assert ft.resolve_head_init("auto", small) == "probe" and ft.resolve_head_init("auto", large) == "random"
    assert ft.resolve_head_init("probe", large) == "probe" and ft.resolve_head_init("random", small) == "random"
    with pytest.raises(DataError, match="auto, probe or random"):
        ft.resolve_head_init("zero", small)


def test_single_class_is_clear_error() -> None:
    with pytest.raises(DataError, match="only one intent"):
        ft.train_intent_model([IntentExample(text="x", intent="a")] * 3, config=ft.FinetuneConfig(max_steps=1))


def test_refit_without_a_model_in_use_fits_on_the_configured_encoder(fake_encoder: FakeEncoder, tmp_path: Path) -> None:
    """Corrections become a promoted store version referencing the encoder the app loads."""
    events = [{"intent_correction": "voucher", "customer_text": f"my voucher code {i} fails"} for i in range(3)]
    events.append({"intent_correction": "", "customer_text": "not a correction"})
    assert intent_promotion.refit_with_corrections([], [], index_dir=tmp_path, encoder=fake_encoder) is None
    kb = [e for e in _examples() if e.intent != "oos"]
    report = intent_promotion.refit_with_corrections(events, kb, index_dir=tmp_path / "no-index", encoder=fake_encoder)
    assert report is not None and report["corrections_used"] == 3 and report["intents"] == 4
    assert report["built_on"] == "the configured embedder fake-encoder"
    used = load_intent_model(tmp_path / "no-index", fake_encoder)
    assert used.model_id == report["model"] and used.origin == ORIGIN_STORE
    assert used.predict("my voucher code 2 fails").top[0].intent == "voucher"
    assert "refitted head" in used.describe()


def test_refit_on_top_of_the_index_head_and_rollback_returns_to_it(fake_encoder: FakeEncoder, tmp_path: Path) -> None:
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    head = load_intent_model(tmp_path, fake_encoder)
    assert head.origin == ORIGIN_INDEX and head.describe().startswith("index head head-")
    events = [{"intent_correction": "refund", "customer_text": "where is my parcel"}]  # relabels a KB text
    report = intent_promotion.refit_with_corrections(events, _examples(), index_dir=tmp_path, encoder=fake_encoder)
    assert report is not None and report["built_on"] == head.describe()
    refit = load_intent_model(tmp_path, fake_encoder)
    assert refit.model_id == report["model"] != head.model_id
    assert refit.predict("where is my parcel").model == report["model"]  # every prediction names its model
    assert intent_promotion.rollback() is None  # one step back: the index head again
    assert load_intent_model(tmp_path, fake_encoder).model_id == head.model_id


def test_promoted_version_for_another_embedder_falls_back_to_the_index_head(
    fake_encoder: FakeEncoder, tmp_path: Path
) -> None:
    other = FakeEncoder(model_id="other")
    intent_promotion.refit_with_corrections(
        [{"intent_correction": "refund", "customer_text": "money back now"}], _examples(), index_dir=tmp_path,
        encoder=other,
    )
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    model = load_intent_model(tmp_path, fake_encoder)
    assert model.origin == ORIGIN_INDEX and "not usable" in model.report["fallback"]


def test_scores_expose_probabilities_and_embeddings(fake_encoder: FakeEncoder, tmp_path: Path) -> None:
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    model = load_intent_model(tmp_path, fake_encoder)
    scored = model.scores(["refund my purchase", ""])
    assert scored.labels == tuple(sorted(TOPICS))
    assert scored.probs.shape == (2, 3) and scored.embeddings.shape == (2, fake_encoder.dimension)
    assert math.isclose(float(scored.probs[0].sum()), 1.0, rel_tol=1e-6) and not scored.probs[1].any()
    assert list(scored.empty) == [False, True]


def test_reads_the_format_1_index_head(fake_encoder: FakeEncoder, tmp_path: Path) -> None:
    """An index built before format 2 keeps working until the next `csassist index`."""
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    meta = json.loads((tmp_path / "intent" / "meta.json").read_text())
    old = {"format": 1, "labels": meta["labels"], "threshold": meta["threshold"],
           "report": {**meta["report"], "encoder": "fake-encoder"}}
    (tmp_path / "intent" / "meta.json").write_text(json.dumps(old))
    model = load_intent_model(tmp_path, fake_encoder)
    assert model.predict("refund my purchase").top[0].intent == "refund"


@pytest.mark.real_model
def test_tiny_real_finetune_budget_promote_refit_rollback(tmp_path: Path, real_encoder) -> None:
    train = [IntentExample(text=t, intent=label) for label, texts in TOPICS.items() for t in texts]
    train += [IntentExample(text=t, intent="oos") for t in OOS]
    events: list[dict] = []
    cfg = ft.FinetuneConfig(max_steps=6, batch_size=8, lr=1e-4, freeze="2", val_split=0.2, evals_per_epoch=1)
    report = intent_promotion.finetune_intents(train, None, cfg, progress=events.append)
    assert report["promoted"] and report["steps"] == 6 and not report["stopped_by_budget"]
    assert report["trainable_layers"] == 4
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "estimate" in kinds and "eval" in kinds
    assert kinds[1] == "probe" and report["probe_train_accuracy"] >= 0.5  # LP-FT: the head starts as a probe
    assert any(e["event"] == "step" and math.isfinite(e["loss"]) for e in events)
    model_dir = Path(report["model_dir"])
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["labels"] == 3 and 0.0 <= metrics["threshold"] <= 1.0
    assert (model_dir / "encoder" / "config.json").is_file() and (model_dir / "head.npz").is_file()

    # The promoted model is what the app uses, named by its version everywhere.
    model = load_intent_model(tmp_path / "no-index", real_encoder)
    assert model.model_id == f"finetuned:{report['version']}" and model.origin == ORIGIN_STORE
    second = report["second_opinion"]  # a frozen-embedder head, mixed in when it helped on validation
    assert second and [r["weight"] for r in second["by_weight"]] == list(WEIGHTS) and "second_opinion" in kinds
    if second["weight"] > 0:
        assert model.second_opinion is not None and model.second_opinion.weight == pytest.approx(second["weight"])
        assert model.second_opinion.encoder.model_id == real_encoder.model_id
        assert model.describe().startswith(f"fine-tuned {report['version']} (intent model store) mixed ")
    else:
        assert model.second_opinion is None
        assert model.describe() == f"fine-tuned {report['version']} (intent model store)"
    pred = model.predict("where is my parcel")
    assert len(pred.top) == 3 and all(math.isfinite(s.probability) for s in pred.top)
    assert sum(s.probability for s in pred.top) <= 1.0 + 1e-6 and model.predict("").top == ()
    ev = evaluate_intents(model, train + [IntentExample(text="hello", intent="unknown_label")], latency_samples=5)
    assert ev["unknown_labels"] == {"unknown_label": 1} and ev["model"] == model.model_id
    assert ev["oos_recall"] is not None and ev["latency_ms_p95"] is not None

    # The same probabilities from the old (format 1, head.pt) layout: older versions stay usable.
    import torch

    legacy = tmp_path / "legacy" / "v0001-20260101T000000Z"
    legacy.mkdir(parents=True)
    model.encoder.save(legacy / "encoder")  # type: ignore[attr-defined]
    torch.save({"weight": torch.tensor(model.head.coef), "bias": torch.tensor(model.head.intercept)}, legacy / "head.pt")
    (legacy / "meta.json").write_text(json.dumps({"format": 1, "labels": model.labels, "threshold": model.threshold,
                                                  "max_length": 64}))
    old = read_model(legacy)
    texts = ["where is my parcel", "refund please", "new address"]
    alone = dataclasses.replace(model, second_opinion=None)
    assert np.allclose(old.scores(texts).probs, alone.scores(texts).probs, atol=1e-5)

    # Bug (b): a refit after a promoted fine-tuned model refines *that* model and is what answers next.
    text = "the courier left it at the wrong house"
    corrections = [{"intent_correction": "change_address", "customer_text": text}]
    refit = intent_promotion.refit_with_corrections(corrections, train, index_dir=tmp_path / "no-index",
                                                    encoder=real_encoder)
    assert refit is not None and refit["built_on"] == model.describe()
    now = load_intent_model(tmp_path / "no-index", real_encoder)
    assert now.model_id == refit["model"] and now.version == refit["version"]
    assert now.encoder.model_id == model.encoder.model_id  # the fine-tuned body, kept
    assert (now.second_opinion is None) == (model.second_opinion is None)  # refitted with the corrections too
    assert intent_store().current().parent == report["version"]  # type: ignore[union-attr]
    assert now.predict(text).top[0].intent == "change_address"

    # Rollback is a stack: back to the fine-tuned model, then to the (missing) index head.
    assert intent_promotion.rollback().name == report["version"]  # type: ignore[union-attr]
    assert load_intent_model(tmp_path / "no-index", real_encoder).model_id == model.model_id
    assert intent_promotion.rollback() is None


@pytest.mark.real_model
def test_time_budget_stops_cleanly_and_keeps_the_best(tmp_path: Path) -> None:
    train = [IntentExample(text=t, intent=label) for label, texts in TOPICS.items() for t in texts * 4]
    events: list[dict] = []
    budget_s = ft.BUDGET_RESERVE_S + 4
    cfg = ft.FinetuneConfig(epochs=50, batch_size=4, freeze="4", val_split=0.2, patience=1000,
                            time_budget_s=budget_s)
    trained = ft.train_intent_model(train, None, cfg, progress=events.append)
    report = trained.model.report
    assert report["stopped_by_budget"] and report["steps"] < report["config"]["epochs"] * 18
    assert report["history"] and report["history"][-1]["step"] == report["steps"]  # the last step was evaluated
    assert report["best_step"] in {h["step"] for h in report["history"]}
    assert report["train_seconds"] < budget_s + 30

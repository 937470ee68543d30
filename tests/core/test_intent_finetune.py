"""Fine-tuning store (promote / rollback), validation split, schedule, and a real tiny training run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from csassist.core.errors import CsassistError, DataError
from csassist.core.learn import intent_finetune as ft
from csassist.core.types import IntentExample
from tests.core.test_intent import OOS, TOPICS


def _fake_model(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "meta.json").write_text("{}")
    return d


def test_promote_and_rollback(tmp_path: Path) -> None:
    v1 = _fake_model(tmp_path, "v0001-a")
    v2 = _fake_model(tmp_path, "v0002-b")
    assert ft.current_model_dir(tmp_path) is None
    with pytest.raises(CsassistError, match="nothing to roll back"):
        ft.rollback(tmp_path)
    ft.promote(v1, tmp_path)
    ft.promote(v2, tmp_path)
    assert ft.current_model_dir(tmp_path) == v2 and ft.previous_model_dir(tmp_path) == v1
    assert ft.rollback(tmp_path) == (v1, v2)
    assert ft.current_model_dir(tmp_path) == v1
    assert ft.next_version_dir(tmp_path).name.startswith("v0003-")


def test_rollback_of_only_model_returns_to_head(tmp_path: Path) -> None:
    v1 = _fake_model(tmp_path, "v0001-a")
    ft.promote(v1, tmp_path)
    assert ft.rollback(tmp_path) == (None, v1)
    assert ft.current_model_dir(tmp_path) is None


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


def test_bad_freeze_and_single_class() -> None:
    with pytest.raises(DataError, match="only one intent"):
        ft.finetune_intents([IntentExample(text="x", intent="a")] * 3, config=ft.FinetuneConfig(max_steps=1))


@pytest.mark.real_model
def test_tiny_real_finetune_promote_predict(tmp_path: Path) -> None:
    from csassist.core.understand.intent import load_intent_model

    train = [IntentExample(text=t, intent=label) for label, texts in TOPICS.items() for t in texts]
    train += [IntentExample(text=t, intent="oos") for t in OOS]
    events: list[dict] = []
    cfg = ft.FinetuneConfig(max_steps=6, batch_size=8, lr=1e-4, freeze="2", val_split=0.2, evals_per_epoch=1)
    report = ft.finetune_intents(train, None, cfg, progress=events.append)
    assert report["promoted"] and report["steps"] == 6
    assert report["trainable_layers"] == 4
    assert any(e["event"] == "step" and math.isfinite(e["loss"]) for e in events)
    assert any(e["event"] == "eval" for e in events)
    model_dir = Path(report["model_dir"])
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["labels"] == 3 and 0.0 <= metrics["threshold"] <= 1.0
    model = load_intent_model(tmp_path / "no-index")  # the promoted model wins over a (missing) head
    pred = model.predict("where is my parcel")
    assert len(pred.top) == 3 and all(math.isfinite(s.probability) for s in pred.top)
    assert sum(s.probability for s in pred.top) <= 1.0 + 1e-6
    assert model.predict("").top == ()
    ev = ft.evaluate_intents(model, train + [IntentExample(text="hello", intent="unknown_label")], latency_samples=5)
    assert ev["unknown_labels"] == {"unknown_label": 1}
    assert ev["oos_recall"] is not None and ev["latency_ms_p95"] is not None

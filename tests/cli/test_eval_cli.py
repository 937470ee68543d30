"""`csassist eval intents` and `csassist finetune --intents` / `--rollback` end to end (real model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist import paths
from csassist.cli import main
from tests.core.test_intent import OOS, TOPICS, _examples


def _write_csv(path: Path, header: str, rows: list[tuple[str, str]]) -> Path:
    path.write_text(header + "\n" + "".join(f'"{t}",{label}\n' for t, label in rows), encoding="utf-8")
    return path


def test_eval_without_model_is_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write_csv(tmp_path / "t.csv", "text,label", [("hi", "a"), ("yo", "b")])
    assert main(["eval", "intents", "--data", str(data)]) == 1
    assert "csassist index" in capsys.readouterr().err
    assert main(["eval", "intents", "--data", str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.mark.real_model
def test_eval_intents_json_and_text(real_encoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from csassist.core.learn.intent_head import fit_intent_head

    fit_intent_head(_examples(), real_encoder, paths.index_dir() / "intent")
    rows = [(t, label) for label, texts in TOPICS.items() for t in texts[:3]] + [(t, "oos") for t in OOS[:2]]
    rows.append(("where can I buy gift cards", "gift_cards"))  # unknown label: an error, not a crash
    data = _write_csv(tmp_path / "test.csv", "text,category", rows)  # banking77's header
    assert main(["eval", "intents", "--data", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    for key in ("accuracy", "macro_f1", "oos_recall", "latency_ms_p50", "latency_ms_p95"):
        assert key in report
    assert report["oos_recall"] is not None and report["unknown_labels"] == {"gift_cards": 1}
    assert "gift_cards" in captured.err
    assert 0.5 <= report["accuracy"] < 1.0  # the unknown row counts as an error
    # naming the index's model by path reads the messages as the app does: the same figures
    assert main(["eval", "intents", "--data", str(data), "--json", "--model", str(paths.index_dir())]) == 0
    by_path = json.loads(capsys.readouterr().out)
    assert (by_path["overall"], by_path["per_intent"]) == (report["overall"], report["per_intent"])
    no_oos = _write_csv(tmp_path / "in.csv", "text,label", rows[:9])
    assert main(["eval", "intents", "--data", str(no_oos), "--json", "--model", str(paths.index_dir())]) == 0
    assert json.loads(capsys.readouterr().out)["oos_recall"] is None
    assert main(["eval", "intents", "--data", str(data)]) == 0
    text = capsys.readouterr().out
    assert "macro-F1" in text and "worst confusions" in text and "p95" in text


@pytest.mark.real_model
def test_finetune_cli_then_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(t, label) for label, texts in TOPICS.items() for t in texts] + [(t, "oos") for t in OOS]
    data = _write_csv(tmp_path / "train.csv", "text,label", rows)
    args = ["finetune", "--intents", str(data), "--max-steps", "3", "--batch-size", "8", "--freeze", "embeddings"]
    assert main([*args, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["promoted"] and Path(first["model_dir"]).is_dir()
    assert main([*args, "--force"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "promoted" in out and "precision" in out
    assert main(["finetune", "--rollback", "--rollback-target", "intent", "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["current"] == Path(first["model_dir"]).name
    assert main(["finetune", "--intents", str(data), "--freeze", "sideways"]) == 1
    assert "--freeze" in capsys.readouterr().err
    single = _write_csv(tmp_path / "one.csv", "text,label", [("a b c", "x"), ("d e f", "x")])
    assert main(["finetune", "--intents", str(single)]) == 1
    assert "only one intent" in capsys.readouterr().err

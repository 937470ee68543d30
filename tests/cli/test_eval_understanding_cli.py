"""`index` fits the OOS detector; `eval retrieval`, `eval intents` by kind and `analyze --json` explain (real model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.cli import main
from tests.conftest import REPO_ROOT
from tests.core.test_index import make_kb
from tests.core.test_intent import TOPICS
from tests.core.test_oos import OFF_TOPIC

TINY = REPO_ROOT / "tests" / "fixtures" / "devset_tiny.jsonl"


@pytest.mark.real_model
def test_index_eval_and_analyze_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Articles say which intent they serve, as the demo KB's do (the KB votes on the intent ranking).
    kb = make_kb(tmp_path / "kb", intents={"missing-parcel": "track_order", "refund-time": "refund",
                                           "change-address": "change_address", "cancel-order": "cancel_order",
                                           "gift-cards": "gift_card"})
    rows = [f"{t},{label}" for label, texts in TOPICS.items() for t in texts]
    (kb / "intents.csv").write_text("text,intent\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (kb / "offtopic.csv").write_text("text,intent\n" + "\n".join(f"{t},oos" for t in OFF_TOPIC) + "\n")
    index = tmp_path / "index"
    assert main(["index", str(kb), "--out", str(index), "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["oos_detector"]["status"] == "fitted" and built["oos_detector"]["off_topic_examples"] == 10
    weight = built["intent_head"]["lexical_weight"]  # the lexical vote: saved when cross-validation chose it
    assert (index / "intent" / "lexical.json").is_file() == (weight > 0)

    assert main(["eval", "retrieval", "--data", str(TINY), "--index", str(index), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["overall"]["n"] == 4 and report["hybrid"] and report["intent_boost"]
    assert set(report["by_kind"]) == {"plain", "typo", "indirect"}
    assert report["by_kind"]["plain"]["hit@1"] == 1.0  # the two plain questions name their article's words
    assert "retrieval: 4/6" not in captured.err and "retrieval: 6/6" in captured.err  # progress on stderr

    assert main(["eval", "intents", "--data", str(TINY), "--index", str(index), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["oos_detector"] and set(report["by_kind"]) == {"plain", "typo", "indirect", "oos"}
    for key in ("closed_set_accuracy", "top3_accuracy", "in_scope_accuracy_after_oos", "in_scope_flagged_oos",
                "oos_precision", "oos_recall", "oos_recall_at_in_scope_accuracy", "oos_recall_at_in_scope_kept"):
        assert key in report["overall"]
    assert report["overall"]["closed_set_accuracy"] >= 0.75
    assert main(["eval", "intents", "--data", str(TINY), "--index", str(index)]) == 0
    text = capsys.readouterr().out
    assert "in-scope flagged" in text and "closed-set" in text and "oos recall at" in text

    assert main(["analyze", "where is my parcel, it never arrived", "--index", str(index), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intent"] == "track_order" and not result["out_of_scope"]
    assert result["oos_reason"].startswith("in scope") and result["nearest_examples"][0]["intent"] == "track_order"
    assert result["kb"][0]["id"] == "missing-parcel" and result["kb"][0]["matched_sentence"]
    assert main(["analyze", "tell me a joke about the weather", "--index", str(index)]) == 0
    assert "why:" in capsys.readouterr().out
    # how the models read a misspelled message is part of the explanation (JSON and text)
    assert main(["analyze", "wher is my parcle, it nevr arrived", "--index", str(index), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["read_as"] == "where is my parcel, it never arrived" and result["intent"] == "track_order"
    assert main(["analyze", "wher is my parcle", "--index", str(index)]) == 0
    assert "read as:   where is my parcel" in capsys.readouterr().out

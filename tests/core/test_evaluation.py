"""Dev-set scoring: loading CSV/JSONL, hit@k/MRR and the OOS-aware intent figures, by kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.core.errors import DataError
from csassist.core.knowledge.index import build_index
from csassist.core.knowledge.kb import load_kb
from csassist.core.learn.evaluation import (
    EvalQuery,
    in_batches,
    intent_metrics,
    load_eval_queries,
    retrieval_metrics,
)
from csassist.core.types import IntentPrediction, IntentScore
from csassist.core.understand.oos import load_off_topic
from tests.conftest import DEMO_KB, REPO_ROOT
from tests.core.test_index import make_kb

TINY = REPO_ROOT / "tests" / "fixtures" / "devset_tiny.jsonl"


def _pred(intents: list[str], oos: bool, score: float | None = None) -> IntentPrediction:
    top = tuple(IntentScore(i, 0.6 / (n + 1)) for n, i in enumerate(intents))
    return IntentPrediction(top=top, out_of_scope=oos, threshold=0.5, oos_score=score)


def test_load_jsonl_and_csv(tmp_path: Path) -> None:
    queries, problems = load_eval_queries(TINY)
    assert len(queries) == 6 and not problems
    assert queries[0] == EvalQuery("t1", "where is my parcel, it has not arrived", "track_order", ("missing-parcel",), "plain")
    assert queries[4].is_oos and queries[4].articles == ()
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('id,text,intent,articles,kind\na,"hi, where is it",track_order,missing-parcel|faq-1,typo\n'
                        'b,,refund,,plain\n', encoding="utf-8")
    queries, problems = load_eval_queries(csv_file)
    assert queries[0].articles == ("missing-parcel", "faq-1") and queries[0].kind == "typo"
    assert len(problems) == 1 and "d.csv:3" in problems[0]
    with pytest.raises(DataError, match="no such file"):
        load_eval_queries(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text("not json\n[1]\n", encoding="utf-8")
    with pytest.raises(DataError, match="no usable rows"):
        load_eval_queries(tmp_path / "bad.jsonl")


def test_retrieval_metrics_by_kind() -> None:
    queries, _ = load_eval_queries(TINY)
    ranked = [
        ["missing-parcel", "x"],  # rank 1
        ["x", "missing-parcel", "missing-parcel"],  # rank 2 (repeats ignored)
        ["a", "b", "c", "refund-time"],  # rank 4
        ["none"],  # miss
        ["x"],  # oos rows have no articles: not counted
        [],
    ]
    m = retrieval_metrics(queries, ranked)
    assert m["overall"]["n"] == 4
    assert m["overall"]["hit@1"] == 0.25 and m["overall"]["hit@3"] == 0.5 and m["overall"]["hit@5"] == 0.75
    assert m["overall"]["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)
    assert m["by_kind"]["plain"]["hit@1"] == 0.5 and m["by_kind"]["typo"]["mrr"] == 0.5
    assert "oos" not in m["by_kind"]


def test_intent_metrics_names_say_which_is_which() -> None:
    queries, _ = load_eval_queries(TINY)
    preds = [
        _pred(["track_order", "refund"], False, 0.1),  # right, kept
        _pred(["refund", "track_order"], False, 0.2),  # wrong top-1, right in top 3
        _pred(["refund"], True, 0.7),  # right but flagged OOS
        _pred(["change_address"], False, 0.3),  # right
        _pred(["refund"], True, 0.9),  # oos caught
        _pred(["refund"], False, 0.4),  # oos missed
    ]
    m = intent_metrics(queries, preds)["overall"]
    assert m["closed_set_accuracy"] == 0.75 and m["top3_accuracy"] == 1.0
    assert m["in_scope_accuracy_after_oos"] == 0.5 and m["in_scope_flagged_oos"] == 0.25
    assert m["oos_recall"] == 0.5 and m["oos_precision"] == 0.5
    # Flag at >= 0.4: in-scope accuracy stays 0.5 (< 0.90), so no threshold reaches 0.90 ...
    assert m["oos_recall_at_in_scope_accuracy"] == {"0.90": None, "0.95": None}
    # ... but keeping all 4 real questions (t > 0.7) still catches the 0.9 one.
    assert m["oos_recall_at_in_scope_kept"]["0.95"] == 0.5
    by_kind = intent_metrics(queries, preds)["by_kind"]
    assert by_kind["oos"]["oos_recall"] == 0.5 and by_kind["plain"]["in_scope_accuracy_after_oos"] == 0.5
    assert by_kind["typo"]["oos_recall"] is None


def test_in_batches_reports_progress() -> None:
    seen: list[tuple[int, int]] = []
    out = in_batches([str(i) for i in range(5)], lambda b: [x + "!" for x in b], batch=2,
                     progress=lambda d, t: seen.append((d, t)))
    assert out == ["0!", "1!", "2!", "3!", "4!"]
    assert seen == [(0, 5), (2, 5), (4, 5), (5, 5)]


def test_dev_set_is_kept_out_of_every_training_path(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    """kb/eval/ is never an article, an FAQ row, an intent example or an index chunk; offtopic.csv is OOS data."""
    kb = make_kb(tmp_path / "kb")
    (kb / "intents.csv").write_text("text,intent\nwhere is my parcel,track_order\n", encoding="utf-8")
    (kb / "offtopic.csv").write_text("text,intent\nare you hiring drivers,oos\n", encoding="utf-8")
    (kb / "eval").mkdir()
    (kb / "eval" / "queries.jsonl").write_text(TINY.read_text(encoding="utf-8"), encoding="utf-8")
    (kb / "eval" / "faq-like.csv").write_text("question,answer\nsecret dev question?,secret answer\n")
    contents = load_kb(kb)
    assert not contents.problems
    texts = {e.text for e in contents.intent_examples}
    assert texts == {"where is my parcel"}  # off-topic negatives reach only the OOS detector:
    assert [e.text for e in load_off_topic(kb)] == ["are you hiring drivers"]
    assert all(not a.source.startswith("eval/") for a in contents.articles)
    report = build_index(kb, tmp_path / "index", fake_encoder)
    chunks = (tmp_path / "index" / "chunks.jsonl").read_text(encoding="utf-8")
    assert "secret" not in chunks and "wher is my parcl" not in chunks
    assert {e.text for e in report.intent_examples} == texts  # what `csassist index` fits the head on

    # The shipped KB: no dev-set message is a training example, an FAQ question or part of an article.
    shipped = DEMO_KB / "eval" / "queries.jsonl"
    if shipped.exists():
        dev = {json.loads(line)["text"].strip().lower() for line in shipped.read_text(encoding="utf-8").splitlines() if line.strip()}
        demo = load_kb(DEMO_KB)
        train = {e.text.strip().lower() for e in demo.intent_examples}
        questions = {q.strip().lower() for a in demo.articles for q in a.questions}
        assert not dev & train and not dev & questions
        assert all(not a.source.startswith("eval/") for a in demo.articles)

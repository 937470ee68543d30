"""`csassist index` and `csassist search` end to end through ``cli.main`` with the real embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, main
from tests.core.test_index import make_kb

pytestmark = pytest.mark.real_model

INTENTS = {
    "where_is_my_order": ["where is my order", "my parcel has not arrived", "package still not here", "track my order"],
    "refund": ["i want my money back", "refund please", "when do i get my refund", "give me a refund now"],
    "cancel": ["cancel my order", "please cancel it", "stop the order", "i dont want it anymore cancel"],
}


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    """Run the CLI and parse its stdout as exactly one JSON object."""
    code = main(argv)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    return code, json.loads(out)


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """The small test KB plus intent examples."""
    root = make_kb(tmp_path / "kb")
    rows = ["text,intent"] + [f"{t},{i}" for i, texts in INTENTS.items() for t in texts]
    (root / "intents.csv").write_text("\n".join(rows) + "\n")
    return root


def test_index_then_search_json(kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], real_encoder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "index"
    code, report = run_json(capsys, ["index", str(kb), "--out", str(out), "--json"])
    assert code == EXIT_OK
    assert (report["articles"], report["chunks"], report["embedded"], report["reused"]) == (6, 6, 6, 0)
    assert report["index_type"] == "flat" and report["problems"] == []
    assert report["precision"] == "int8" and report["embedder"] == "all-MiniLM-L6-v2"  # the app's default weights
    assert report["embedder_note"] == ""  # MiniLM keeps its int8 weights (the fidelity check passes)
    assert report["intent_examples"] == 12
    assert report["intent_head"]["status"] == "fitted"
    if report["intent_head"]["status"] == "fitted":
        assert (out / "intent").is_dir()

    code, result = run_json(capsys, ["search", "my parcel never came", "--json", "--index", str(out), "-k", "3"])
    assert code == EXIT_OK
    assert list(result) == ["hits"]
    hits = result["hits"]
    assert len(hits) == 3
    assert hits[0]["id"] == "missing-parcel"
    assert hits[0]["chunk_id"] == "missing-parcel#0"
    assert hits[0]["source"] == "articles/missing-parcel.md"
    assert set(hits[0]) == {"id", "chunk_id", "title", "score", "text", "matched_sentence", "source"}
    assert hits[0]["matched_sentence"] and hits[0]["matched_sentence"] in hits[0]["text"]
    assert len({h["id"] for h in hits}) == 3  # one hit per article (ranked by fusion; score is the cosine)

    # Unchanged KB: nothing is re-embedded, and the intent head survives the rebuild.
    code, report = run_json(capsys, ["index", str(kb), "--out", str(out), "--json"])
    assert (code, report["embedded"], report["reused"]) == (EXIT_OK, 0, 6)


def test_default_locations_table_output_and_hnsw(kb: Path, capsys: pytest.CaptureFixture[str], real_encoder) -> None:  # type: ignore[no-untyped-def]
    assert main(["index", str(kb), "--index-type", "hnsw"]) == EXIT_OK  # default --out under CSASSIST_HOME
    text = capsys.readouterr().out
    for needle in ("articles", "embedded", "hnsw", "all-MiniLM-L6-v2"):
        assert needle in text
    assert main(["search", "how long until my refund arrives", "-k", "2"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "refund-time" in text and "score" in text


def test_bad_input_gives_partial_exit_and_lists_problems(
    kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], real_encoder
) -> None:  # type: ignore[no-untyped-def]
    (kb / "broken.md").write_text("---\nid: x\ntitle: [oops\n---\nbody\n")
    (kb / "export.csv").write_text("q,a\nhi,there\n")
    out = tmp_path / "index"
    code = main(["index", str(kb), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == EXIT_PARTIAL
    assert "broken.md:" in text and "export.csv:1:" in text and "missing column" in text
    code, report = run_json(capsys, ["index", str(kb), "--out", str(out), "--json"])
    assert code == EXIT_PARTIAL and report["exit_code"] == EXIT_PARTIAL
    assert {p["file"] for p in report["problems"]} == {"broken.md", "export.csv"}
    assert report["chunks"] == 6  # the rest is indexed


def test_errors_are_clean_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "hello", "--index", str(tmp_path / "none")]) == EXIT_ERROR
    assert "no index at" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing-kb"), "--out", str(tmp_path / "i")]) == EXIT_ERROR
    assert "does not exist" in capsys.readouterr().err

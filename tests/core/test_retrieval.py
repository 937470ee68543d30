"""Retriever: search results, refusal of stale/foreign indexes, flat vs HNSW, and a real-model check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.core.errors import IndexUnusableError
from csassist.core.knowledge.index import CHUNKS_FILE, INDEX_FILE, MANIFEST_FILE, build_index
from csassist.core.knowledge.retrieval import Retriever
from tests.conftest import DEMO_KB
from tests.core.test_index import make_kb
from tests.fakes import FakeEncoder


@pytest.fixture
def built(tmp_path: Path, fake_encoder: FakeEncoder) -> Path:
    """A fake-encoder index over the small test KB."""
    out = tmp_path / "index"
    build_index(make_kb(tmp_path / "kb"), out, fake_encoder)
    return out


def test_search_returns_best_passage_first(built: Path, fake_encoder: FakeEncoder) -> None:
    retriever = Retriever.open(built, fake_encoder)
    assert retriever.size == 6
    hits = retriever.search("how long does my refund take", k=3)
    assert [h.article_id for h in hits][0] == "refund-time"
    assert len(hits) == 3
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].chunk_id == "refund-time#0"
    assert hits[0].source == "articles/refund-time.md"
    assert hits[0].intents == ("x",)
    assert retriever.search("", k=3) == []
    assert retriever.search("   ", k=3) == []
    assert len(retriever.search("parcel", k=50)) == 6  # k larger than the index


def test_search_many_matches_single_searches(built: Path, fake_encoder: FakeEncoder) -> None:
    retriever = Retriever.open(built, fake_encoder)
    queries = ["cancel my order", "", "gift cards expire"]
    many = retriever.search_many(queries, k=2)
    assert many[1] == []
    assert [h.chunk_id for h in many[0]] == [h.chunk_id for h in retriever.search(queries[0], k=2)]
    assert many[2][0].article_id == "gift-cards"


def test_one_article_is_listed_once(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    kb = make_kb(tmp_path / "kb")
    sections = "\n\n".join(f"## Refund case {i}\n\n" + "refund money back card refund days " * 25 for i in range(5))
    (kb / "articles" / "refund-guide.md").write_text(f"---\nid: refund-guide\ntitle: Refund guide\n---\n{sections}\n")
    out = tmp_path / "index"
    build_index(kb, out, fake_encoder)
    retriever = Retriever.open(out, fake_encoder)
    hits = retriever.search("refund card days", k=3)
    articles = [h.article_id for h in hits]
    assert articles[0] == "refund-guide" and "refund-time" in articles  # its 5 chunks fill one slot
    assert len(set(articles)) == len(articles) == 3
    hits = retriever.search("refund card days", k=10)  # fewer articles than k: never a second chunk
    assert sum(h.article_id == "refund-guide" for h in hits) == 1 and len(hits) == 7


def test_missing_index_says_to_run_index(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    with pytest.raises(IndexUnusableError, match=r"no index at .*: run `csassist index kb/`"):
        Retriever.open(tmp_path / "nothing", fake_encoder)


def test_foreign_embedder_is_refused(built: Path) -> None:
    with pytest.raises(IndexUnusableError, match=r"built with embedder 'fake-encoder'.*--rebuild"):
        Retriever.open(built, FakeEncoder(model_id="another-model"))
    with pytest.raises(IndexUnusableError, match=r"64-d vectors.*32-d.*--rebuild"):
        Retriever.open(built, FakeEncoder(dimension=32))


def test_other_format_version_is_refused(built: Path, fake_encoder: FakeEncoder) -> None:
    manifest = json.loads((built / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (built / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(IndexUnusableError, match=r"format version 99.*--rebuild"):
        Retriever.open(built, fake_encoder)


def test_missing_or_inconsistent_files_are_refused(built: Path, fake_encoder: FakeEncoder) -> None:
    lines = (built / CHUNKS_FILE).read_text().splitlines()
    (built / CHUNKS_FILE).write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexUnusableError, match="inconsistent.*--rebuild"):
        Retriever.open(built, fake_encoder)
    (built / INDEX_FILE).unlink()
    with pytest.raises(IndexUnusableError, match="missing index.faiss.*--rebuild"):
        Retriever.open(built, fake_encoder)
    (built / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(IndexUnusableError, match="unreadable.*--rebuild"):
        Retriever.open(built, fake_encoder)


def test_flat_hnsw_and_ivf_give_the_same_hits(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    kb = make_kb(tmp_path / "kb")
    results = {}
    for kind in ("flat", "hnsw", "ivf"):
        out = tmp_path / kind
        report = build_index(kb, out, fake_encoder, index_type=kind)
        retriever = Retriever.open(out, fake_encoder)
        assert report.index_type == kind == retriever.manifest["index_type"]
        results[kind] = [h.article_id for h in retriever.search("cancel my order before packing", k=3)]
    assert results["flat"][0] == results["hnsw"][0] == results["ivf"][0] == "cancel-order"
    assert results["flat"] == results["hnsw"] == results["ivf"]


@pytest.mark.real_model
def test_real_encoder_finds_delivery_article(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    build_index(kb, out, real_encoder)
    retriever = Retriever.open(out)  # loads the embedder named in the manifest
    assert retriever.encoder.model_id == "all-MiniLM-L6-v2"
    hits = retriever.search("my parcel never came", k=3)
    assert hits[0].article_id == "missing-parcel"
    assert 0.3 < hits[0].score <= 1.0
    assert retriever.search("I want my money back", k=1)[0].article_id == "refund-time"


@pytest.mark.real_model
def test_real_encoder_on_demo_kb(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    if not (DEMO_KB / "articles" / "missing-parcel.md").exists():
        pytest.skip("demo kb/ has no missing-parcel article yet")
    out = tmp_path / "index"
    build_index(DEMO_KB, out, real_encoder)
    hits = Retriever.open(out, real_encoder).search("my parcel never came", k=5)
    assert hits[0].article_id == "missing-parcel"

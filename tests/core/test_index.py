"""Index builds: files and manifest, incremental re-embedding, intent/ preservation, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from csassist.core.errors import IndexUnusableError, KBError
from csassist.core.knowledge.index import (
    CHUNKS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    VECTORS_FILE,
    build_index,
    choose_index_type,
    ivf_cells,
)
from csassist.core.knowledge.retrieval import Retriever
from csassist.core.progress import ProgressEvent
from tests.fakes import FakeEncoder

TOPICS = {
    "missing-parcel": ("My parcel never arrived", "Parcel lost in delivery: we open a carrier investigation."),
    "refund-time": ("How long does a refund take", "Refunds reach your card within 5 to 10 business days."),
    "change-address": ("Change the delivery address", "Before dispatch you can edit the shipping address."),
    "cancel-order": ("Cancel an order", "Orders can be cancelled until they are packed."),
    "gift-cards": ("Gift cards", "Gift cards never expire and can be used for any item."),
}


def make_kb(root: Path, topics: dict[str, tuple[str, str]] = TOPICS, intents: dict[str, str] | None = None) -> Path:
    """A small KB of one-chunk articles plus an FAQ file; ``intents`` maps article ids to their intent (else ``x``)."""
    (root / "articles").mkdir(parents=True, exist_ok=True)
    for article_id, (title, body) in topics.items():
        intent = (intents or {}).get(article_id, "x")
        (root / "articles" / f"{article_id}.md").write_text(
            f"---\nid: {article_id}\ntitle: {title}\nintents: [{intent}]\n---\n{body}\n", encoding="utf-8"
        )
    (root / "faq.csv").write_text("question,answer\nDo you ship abroad?,We ship to all EU countries.\n")
    return root


def test_build_writes_index_files_and_manifest(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    report = build_index(kb, out, fake_encoder)
    assert (report.articles, report.chunks, report.embedded, report.reused, report.removed) == (6, 6, 6, 0, 0)
    assert report.clean and report.index_type == "flat"
    for name in (INDEX_FILE, CHUNKS_FILE, VECTORS_FILE, MANIFEST_FILE):
        assert (out / name).is_file()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["format_version"] == 1
    assert manifest["embedder"] == {"model_id": "fake-encoder", "dimension": 64, "precision": "float32"}
    assert manifest["index_type"] == "flat"
    assert manifest["counts"]["chunks"] == 6
    assert set(manifest["content_hashes"]) == {f"{a}#0" for a in TOPICS} | {"faq-1#0"}
    vectors = np.load(out / VECTORS_FILE)
    assert vectors.shape == (6, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not list(tmp_path.glob(".index.*"))  # no temp dirs left behind


def test_second_run_reembeds_only_what_changed(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    encoder = FakeEncoder()
    build_index(kb, out, encoder)
    assert encoder.calls == 12  # 6 chunks + their 6 sentences (evidence)

    report = build_index(kb, out, encoder)
    assert (report.embedded, report.reused, report.removed) == (0, 6, 0)
    assert report.extra["sentences_embedded"] == 0
    assert encoder.calls == 12  # nothing new was encoded

    (kb / "articles" / "gift-cards.md").write_text(
        "---\nid: gift-cards\ntitle: Gift cards\n---\nGift cards are valid for three years.\n", encoding="utf-8"
    )
    (kb / "articles" / "cancel-order.md").unlink()
    report = build_index(kb, out, encoder)
    assert (report.embedded, report.reused, report.removed, report.chunks) == (1, 4, 2, 5)
    assert encoder.calls == 14  # one new chunk, one new sentence
    hits = Retriever.open(out, encoder).search("gift cards three years", k=1)
    assert hits[0].article_id == "gift-cards" and "three years" in hits[0].text

    report = build_index(kb, out, encoder, rebuild=True)
    assert (report.embedded, report.reused) == (5, 0)
    assert report.full_rebuild_reason == "--rebuild requested"


def test_other_embedder_forces_full_reembed(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    build_index(kb, out, FakeEncoder())
    other = FakeEncoder(dimension=32, model_id="other-model")
    report = build_index(kb, out, other)
    assert (report.embedded, report.reused) == (6, 0)
    assert "other-model" in report.full_rebuild_reason
    assert Retriever.open(out, other).manifest["embedder"]["model_id"] == "other-model"


def test_other_weights_precision_forces_full_reembed(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    build_index(kb, out, FakeEncoder())
    int8 = FakeEncoder()
    int8.precision = "int8"  # type: ignore[attr-defined]
    report = build_index(kb, out, int8)
    assert (report.embedded, report.reused) == (6, 0)
    assert "float32" in report.full_rebuild_reason and "int8" in report.full_rebuild_reason
    assert Retriever.open(out, int8).manifest["embedder"]["precision"] == "int8"
    assert build_index(kb, out, int8).reused == 6  # the same precision again: nothing re-embedded


def test_intent_subdir_is_preserved(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    build_index(kb, out, fake_encoder)
    (out / "intent").mkdir()
    (out / "intent" / "head.json").write_text('{"fitted": true}')
    build_index(kb, out, fake_encoder, rebuild=True)
    assert json.loads((out / "intent" / "head.json").read_text()) == {"fitted": True}


def test_interrupt_during_embedding_keeps_previous_index(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    encoder = FakeEncoder()
    build_index(kb, out, encoder)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob('*') if p.is_file()}

    (kb / "articles" / "new.md").write_text("---\nid: new\ntitle: New\n---\nBrand new article.\n")

    def interrupt(event: ProgressEvent) -> None:
        if event.done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(kb, out, encoder, progress=interrupt)
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob('*') if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "kb"]  # no temp or .old dirs
    assert Retriever.open(out, encoder).size == 6


def test_interrupt_while_writing_keeps_previous_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss

    kb = make_kb(tmp_path / "kb")
    out = tmp_path / "index"
    encoder = FakeEncoder()
    build_index(kb, out, encoder)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob('*') if p.is_file()}

    def boom(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(faiss, "write_index", boom)
    with pytest.raises(KeyboardInterrupt):
        build_index(kb, out, encoder, rebuild=True)
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob('*') if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "kb"]


def test_kb_with_nothing_usable_is_fatal(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "bad.md").write_text("no front matter")
    with pytest.raises(KBError, match="no usable articles"):
        build_index(kb, tmp_path / "index", fake_encoder)
    assert not (tmp_path / "index").exists()


def test_problems_are_reported_and_the_rest_indexed(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    kb = make_kb(tmp_path / "kb")
    (kb / "broken.md").write_bytes(b"\xff\xfe\x00garbage")
    report = build_index(kb, tmp_path / "index", fake_encoder)
    assert report.chunks == 6 and not report.clean
    assert [str(p) for p in report.problems] == ["broken.md: binary file (contains NUL bytes); skipped"]


def test_refuses_to_replace_a_directory_that_is_not_an_index(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    kb = make_kb(tmp_path / "kb")
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(IndexUnusableError, match="not empty and holds no csassist index"):
        build_index(kb, precious, fake_encoder)
    assert (precious / "thesis.txt").read_text() == "do not delete"
    (tmp_path / "empty").mkdir()
    assert build_index(kb, tmp_path / "empty", fake_encoder).chunks == 6


def test_index_type_choice() -> None:
    assert choose_index_type("auto", 100) == "flat"
    assert choose_index_type("auto", 200_000) == "hnsw"
    assert choose_index_type("hnsw", 10) == "hnsw"
    assert choose_index_type("ivf", 10) == "ivf"
    with pytest.raises(ValueError, match="unknown index type"):
        choose_index_type("lsh", 10)
    assert ivf_cells(6) == 1 and ivf_cells(100_000) == 1264

"""Hybrid retrieval: BM25 tokenizers and index files, rank fusion, intent boost, grouping, evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.core.errors import IndexUnusableError
from csassist.core.knowledge.fusion import (
    DENSE_ONLY,
    group_by_article,
    intent_bonus,
    ranked,
    reciprocal_rank_fusion,
)
from csassist.core.knowledge.index import MANIFEST_FILE, build_index
from csassist.core.knowledge.lexical import LexicalIndex, char_tokens, word_tokens
from csassist.core.knowledge.retrieval import Retriever
from csassist.core.knowledge.sentences import split_sentences
from tests.conftest import DEMO_KB
from tests.core.test_index import make_kb


def test_tokenizers() -> None:
    assert word_tokens("I've been CHARGED twice, and refunds haven't arrived!") == ["charg", "twic", "refund", "arriv"]
    assert word_tokens("charge") == word_tokens("charged") == word_tokens("charges")
    assert "#ca" in char_tokens("cancell") and "ance" in char_tokens("cancel")
    assert word_tokens("") == [] and char_tokens("a an to") == []


def test_sentences_flatten_markdown() -> None:
    text = "## Pending authorisation\n\nSeeing **two payments** is worrying. It usually goes away.\n\n- the order number;\n- a screenshot"
    assert split_sentences(text) == [
        "Pending authorisation",
        "Seeing two payments is worrying.",
        "It usually goes away.",
        "the order number;",
        "a screenshot",
    ]
    assert split_sentences("Hi. Ok. Where is my parcel?") == ["Hi. Ok. Where is my parcel?"]


def test_rank_fusion_grouping_and_boost() -> None:
    fused = reciprocal_rank_fusion([([0, 1, 2], 1.0), ([2, 0], 1.0)], k=60)
    assert fused[0] == pytest.approx(1 / 61 + 1 / 62) and fused[1] == pytest.approx(1 / 62)
    groups = group_by_article(fused, ["a", "b", "a"])
    assert [(g[0], g[1]) for g in groups] == [("a", 0), ("b", 1)]  # article a listed once, as its best chunk
    assert intent_bonus(("x", "y"), {"y": 0.5}, boost=1.0, k=60) == pytest.approx(0.5 / 61)
    assert intent_bonus(("x",), {"y": 0.9}, boost=1.0, k=60) == 0.0
    assert ranked(__import__("numpy").array([0.0, 3.0, 1.0]), 5, positive_only=True) == [1, 2]


def test_lexical_index_round_trip_and_refusal(tmp_path: Path) -> None:
    index = LexicalIndex.build(["charged twice for one order", "parcel never arrived", "loyalty points"])
    info = index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex", info, 3)
    assert loaded.scores("charged twice").argmax() == 0
    assert loaded.scores("parcl nevr arived", "char").argmax() == 1  # typos still match letter groups
    assert not loaded.scores("the and of").any()
    with pytest.raises(IndexUnusableError, match="does not match"):
        LexicalIndex.load(tmp_path / "lex", info, 4)
    with pytest.raises(IndexUnusableError, match="tokenizer"):
        LexicalIndex.load(tmp_path / "lex", {**info, "tokenizer": "old"}, 3)


def _kb_with_intents(root: Path) -> Path:
    kb = make_kb(root)
    (kb / "articles" / "refund-time.md").write_text(
        "---\nid: refund-time\ntitle: Refund timing\nintents: [refund_status]\n---\n"
        "Refunds reach your card within 5 to 10 business days. We email you when the refund is issued.\n",
        encoding="utf-8",
    )
    (kb / "articles" / "refund-methods.md").write_text(
        "---\nid: refund-methods\ntitle: Refund methods\nintents: [request_refund]\n---\n"
        "A refund goes back to the card you paid with. Gift card orders are refunded to a gift card.\n",
        encoding="utf-8",
    )
    return kb


def test_hybrid_search_groups_boosts_and_explains(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "index"
    build_index(_kb_with_intents(tmp_path / "kb"), out, fake_encoder)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["lexical"]["documents"] == 7 and manifest["sentences"]["count"] >= 7
    retriever = Retriever.open(out, fake_encoder)
    assert retriever.hybrid
    hits = retriever.search("refund card", k=5)
    ids = [h.article_id for h in hits]
    assert len(ids) == len(set(ids))
    assert all(h.evidence and h.evidence in h.text for h in hits)
    first = {h.article_id for h in hits[:2]}
    assert first == {"refund-time", "refund-methods"}
    for intent, article in (("refund_status", "refund-time"), ("request_refund", "refund-methods")):
        assert retriever.search("refund card", k=2, intents={intent: 0.9})[0].article_id == article
    dense = retriever.search("refund card", k=5, options=DENSE_ONLY)
    assert {h.article_id for h in dense[:2]} == first
    assert retriever.best_similarity(fake_encoder.encode(["refund card"])).shape == (1,)


def test_lexical_files_are_manifest_checked(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "index"
    build_index(make_kb(tmp_path / "kb"), out, fake_encoder)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["lexical"]["documents"] = 99
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(IndexUnusableError, match="re-index"):
        Retriever.open(out, fake_encoder)
    del manifest["lexical"]  # an index from before hybrid retrieval still opens, dense only
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert not Retriever.open(out, fake_encoder).hybrid


@pytest.mark.real_model
def test_real_hybrid_on_demo_kb_survives_typos(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "index"
    build_index(DEMO_KB, out, real_encoder)
    retriever = Retriever.open(out, real_encoder)
    hits = retriever.search("i was chraged twice for one ordr", k=5)
    assert hits[0].article_id == "double-charged"
    assert len({h.article_id for h in hits}) == 5
    # evidence is a sentence of the passage, shown without Markdown markers (sentences.split_sentences)
    assert hits[0].evidence in hits[0].text.replace("**", "") and "twice" in hits[0].evidence
    assert retriever.reading("i was chraged twice for one ordr") == "i was charged twice for one order"
    assert retriever.search("cancell my ordr pls", k=1)[0].article_id == "cancel-an-order"

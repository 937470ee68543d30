"""The KB's titles and questions join the intent head's training examples (csassist index)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.core.errors import DataError
from csassist.core.knowledge import embedder
from csassist.core.knowledge.kb import load_kb
from csassist.core.learn.kb_examples import intent_training_examples, kb_phrasing_examples, with_kb_phrasings
from csassist.core.types import IntentExample
from csassist.core.workspace import Workspace
from csassist.settings import GenerationSettings, RetrievalSettings, Settings
from tests.fakes import FakeEncoder


def _tiny_kb(root: Path) -> Path:
    """Two single-intent articles, one two-intent article, one FAQ row and a small intents.csv."""
    (root / "articles").mkdir(parents=True)
    (root / "faq").mkdir()
    (root / "articles" / "reset.md").write_text(
        "---\nid: reset\ntitle: Resetting your password\nintents: [reset_password]\n"
        "questions:\n  - I forgot my password\n  - Where is my parcel\n---\nUse the link on the login page.\n",
        encoding="utf-8",
    )
    (root / "articles" / "parcel.md").write_text(
        "---\nid: parcel\ntitle: Parcel not arrived\nintents: [missing_parcel]\n"
        "questions:\n  - My delivery is late\n---\nWe look into it with the carrier.\n",
        encoding="utf-8",
    )
    (root / "articles" / "mixed.md").write_text(
        "---\nid: mixed\ntitle: Refunds for lost parcels\nintents: [missing_parcel, reset_password]\n"
        "questions:\n  - Refund for a lost parcel\n---\nWe refund lost parcels.\n",
        encoding="utf-8",
    )
    (root / "faq" / "account.jsonl").write_text(
        json.dumps({"id": "faq-login", "title": "Locked out", "question": "Why can't I log in?",
                    "answer": "Reset your password.", "intent": "reset_password"}) + "\n",
        encoding="utf-8",
    )
    (root / "intents.csv").write_text(
        "text,intent\nwhere is my parcel,missing_parcel\nmy order never arrived,missing_parcel\n"
        "reset my password,reset_password\nwhat is the weather,oos\n",
        encoding="utf-8",
    )
    return root


def test_single_intent_articles_and_faq_rows_give_labelled_examples(tmp_path: Path) -> None:
    kb = load_kb(_tiny_kb(tmp_path / "kb"))
    got = {(e.text, e.intent) for e in kb_phrasing_examples(kb.articles)}
    assert got == {
        ("Resetting your password", "reset_password"),
        ("I forgot my password", "reset_password"),
        ("Where is my parcel", "reset_password"),
        ("Parcel not arrived", "missing_parcel"),
        ("My delivery is late", "missing_parcel"),
        ("Locked out", "reset_password"),
        ("Why can't I log in?", "reset_password"),
    }  # the two-intent article gives nothing: its wording belongs to neither class alone


def test_labelled_examples_come_first_and_are_never_relabelled(tmp_path: Path) -> None:
    kb = load_kb(_tiny_kb(tmp_path / "kb"))
    merged = with_kb_phrasings(kb.intent_examples, kb.articles)
    assert merged[: len(kb.intent_examples)] == list(kb.intent_examples)
    # "Where is my parcel" is already a missing_parcel example (case aside): the article's label loses
    labels = [e.intent for e in merged if e.text.casefold() == "where is my parcel"]
    assert labels == ["missing_parcel"]
    assert len(merged) == len(kb.intent_examples) + 6
    assert with_kb_phrasings([IntentExample("x", "a")], []) == [IntentExample("x", "a")]


def test_finetune_reads_a_kb_directory_as_index_does(tmp_path: Path) -> None:
    kb = load_kb(_tiny_kb(tmp_path / "kb"))
    assert intent_training_examples(tmp_path / "kb") == with_kb_phrasings(kb.intent_examples, kb.articles)
    shipped = Path(__file__).resolve().parents[2] / "kb"
    held_out = sorted((shipped / "eval").glob("*.jsonl"))  # the dev set and the confirmation set
    assert len(held_out) >= 2
    dev = {json.loads(line)["text"].casefold() for path in held_out for line in path.open(encoding="utf-8")}
    assert not dev & {e.text.casefold() for e in intent_training_examples(shipped)}  # held-out sets never train
    (tmp_path / "bare" / "articles").mkdir(parents=True)
    with pytest.raises(DataError, match="no intents.csv"):
        intent_training_examples(tmp_path / "bare")


def test_index_fits_the_head_on_the_kb_phrasings_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = FakeEncoder(model_id="fake")
    monkeypatch.setattr(embedder, "load_encoder", lambda name=None, **_: encoder)
    kb_dir = _tiny_kb(tmp_path / "kb")
    settings = Settings(
        retrieval=RetrievalSettings(kb_dir=str(kb_dir), index_dir=str(tmp_path / "index")),
        generation=GenerationSettings(backend="extractive"),
    )
    built = Workspace(settings).build_index(rebuild=True)
    assert built.intents.status == "fitted" and built.intents.details["examples"] == 3 + 6
    plain = Workspace(settings).build_index(rebuild=True, kb_phrasings=False)
    assert plain.intents.details["examples"] == 3

"""Typo repair towards the KB's words: what it corrects, what it never touches, and where it is applied."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from csassist.core.knowledge.fusion import RetrievalOptions
from csassist.core.knowledge.index import build_index
from csassist.core.knowledge.retrieval import Retriever
from csassist.core.knowledge.spelling import SpellingNormaliser, kb_vocabulary
from tests.core.test_index import make_kb
from tests.fakes import FakeEncoder

KB_TEXT = (
    "Cancel an order before it is packed, also if you ordered by mistake. Your refund reaches your card in 5 to 10 days. "
    "Print the return label and drop the parcel at a PostNL point. Reset your password from the login page. "
    "A wooden table and a table lamp. Where is my order? Track your parcel with the tracking link."
)


@pytest.fixture(scope="module")
def speller() -> SpellingNormaliser:
    return SpellingNormaliser(kb_vocabulary([KB_TEXT]))


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("cancle my ordr pls!! 339017, orderd by mistake", "cancel my order pls!! 339017, ordered by mistake"),
        ("wen do i get my refnd??", "wen do i get my refund??"),  # "wen" is an English word: left alone
        ("can i still do the retrun lable thing", "can i still do the return label thing"),  # label, not table
        ("forgot pasword n the reset email never came", "forgot password n the reset email never came"),
        ("wher is my parcle", "where is my parcel"),
        ("Wher is my ordr? Parcle never came.", "Where is my order? Parcel never came."),  # sentence openings
    ],
)
def test_misspelled_words_become_the_kb_words_meant(speller: SpellingNormaliser, typed: str, meant: str) -> None:
    assert speller.normalise(typed) == meant


@pytest.mark.parametrize(
    "text",
    [
        "Spotify took money from my card",  # capitalised: names and brands
        "Hi, I'm Priya Raman from the USA",
        "Raman here. Okafor too.",  # a name opening a sentence, more than one edit from any word
        "my email is j.novak@example.com, order LK-274519",  # addresses and codes
        "the speckled glaze, I texted you, it flickered",  # known English words, even if not in the KB
        "the courier's app said 'delivered' yesterday",  # apostrophes and quotes
        "u n hw",  # texting shorthand under three letters
        "",
    ],
)
def test_right_words_names_and_codes_are_never_touched(speller: SpellingNormaliser, text: str) -> None:
    assert speller.normalise(text) == text


def test_repair_is_idempotent_and_needs_a_vocabulary(speller: SpellingNormaliser) -> None:
    once = speller.normalise("cancle my ordr, refnd to my crd")
    assert speller.normalise(once) == once
    assert SpellingNormaliser(Counter()).normalise("cancle my ordr") == "cancle my ordr"


def test_the_index_reads_messages_with_repair_and_the_intent_model_reads_the_same(
    tmp_path: Path, fake_encoder: FakeEncoder
) -> None:
    """One reading for retrieval, the KB vote, the intent head and the OOS detector: the KB's words."""
    from csassist.core.learn.intent_head import fit_intent_head
    from csassist.core.understand.intent_format import load_head
    from csassist.core.understand.stack import attach_kb
    from tests.core.test_intent import _examples

    out = tmp_path / "index"
    build_index(make_kb(tmp_path / "kb"), out, fake_encoder)
    retriever = Retriever.open(out, fake_encoder)
    assert retriever.reading("  how long does a refnd take ") == "how long does a refund take"
    assert retriever.reading("how long does a refnd take", RetrievalOptions(spelling=False)) == "how long does a refnd take"
    assert retriever.search("how long does a refnd take", 1)[0].article_id == "refund-time"

    fit_intent_head(_examples(), fake_encoder, out / "intent")
    head = load_head(out / "intent", fake_encoder)
    assert head.model_text(" cancle my ordr ") == "cancle my ordr"  # no KB attached: as written
    model = attach_kb(head, out, fake_encoder, retriever)
    assert model.model_text(" cancle my ordr ") == "cancel my order"
    assert model.predict("cancle my ordr").read_as == "cancel my order"  # shown with the prediction
    assert model.predict("cancel my order").read_as == ""
    assert model.predict("cancle my ordr").top == dataclasses.replace(model, reading=None).predict("cancel my order").top

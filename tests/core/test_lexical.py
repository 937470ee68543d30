"""The lexical intent vote: fitting, its share chosen by cross-validation, storage, and where it applies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from csassist.core.errors import ModelMissingError
from csassist.core.learn.index_intents import fit_index_intents
from csassist.core.learn.intent_head import fit_head
from csassist.core.learn.lexical_fit import fit_lexical, fit_lexical_vote
from csassist.core.understand.intent_format import load_head
from csassist.core.understand.lexical import VECTORISERS, LexicalVote
from csassist.core.understand.stack import attach_kb
from tests.core.test_intent import TOPICS, _examples
from tests.fakes import FakeEncoder

LABELS = tuple(sorted(TOPICS))
TEXTS = [t for label in LABELS for t in TOPICS[label]]
Y = np.array([LABELS.index(label) for label in LABELS for _ in TOPICS[label]])


def test_fitted_vote_reads_words_and_misspellings() -> None:
    vote = fit_lexical(TEXTS, Y, LABELS, weight=0.5)
    probs = vote.probs(["refund my purchase please", "wher is my parcle"])
    assert np.allclose(probs.sum(1), 1.0) and probs.shape == (2, len(LABELS))
    assert [LABELS[i] for i in probs.argmax(1)] == ["refund", "track_order"]  # char n-grams survive the typos
    assert vote.probs([]).shape == (0, len(LABELS))


def test_probabilities_are_scikit_learns_tfidf_arithmetic() -> None:
    vote = fit_lexical(TEXTS, Y, LABELS, weight=0.5)
    texts = ["refund my purchase please", "wher is my parcle", "zzz", "", "Refund REFUND refund, twice!"]
    reference = []  # scikit-learn's vectorisers rebuilt from the vote's vocabularies and idf
    for settings, vocabulary, idf in zip(VECTORISERS, vote.vocabularies, vote.idfs, strict=True):
        vectoriser = TfidfVectorizer(**settings, vocabulary=vocabulary)
        vectoriser.idf_ = idf
        reference.append(vectoriser)
    logits = vote.intercept + sum(np.asarray(v.transform(texts) @ b) for v, b in zip(reference, vote._blocks, strict=True))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert np.allclose(vote.probs(texts), expected / expected.sum(axis=1, keepdims=True), atol=1e-12)


def test_saved_without_pickles_and_read_back_identically(tmp_path: Path) -> None:
    vote = fit_lexical(TEXTS, Y, LABELS, weight=0.4)
    vote.save(tmp_path)
    again = LexicalVote.load(tmp_path)
    assert again is not None and again.labels == LABELS and again.weight == pytest.approx(0.4)
    texts = ["i want my money back", "new delivery address", "zzz"]
    assert np.allclose(again.probs(texts), vote.probs(texts))
    assert LexicalVote.load(tmp_path / "nowhere") is None
    (tmp_path / "lexical.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelMissingError, match="lexical intent vote unreadable"):
        LexicalVote.load(tmp_path)


def test_share_is_chosen_by_cross_validation_and_zero_data_is_skipped() -> None:
    vectors = FakeEncoder().encode(TEXTS)
    vote, report = fit_lexical_vote(TEXTS, vectors, Y, LABELS)
    assert report["weight"] == (vote.weight if vote is not None else 0.0)
    assert [r["weight"] for r in report["by_weight"]][0] == 0.0
    assert report["cv_accuracy_mixed"] >= report["cv_accuracy_head"]  # never chosen to lose
    assert fit_lexical_vote(TEXTS[:3], vectors[:3], Y[:3], LABELS)[0] is None


def test_index_fit_saves_the_vote_beside_the_head_and_it_reorders_only_the_ranking(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    report = fit_index_intents(_examples(), encoder, tmp_path / "intent")
    assert "lexical" in report and report["lexical_weight"] == report["lexical"]["weight"]
    head = load_head(tmp_path / "intent", encoder)
    vote = fit_lexical(TEXTS, Y, LABELS, weight=0.6)  # a known vote, whatever the folds chose
    vote.save(tmp_path / "intent")
    model = attach_kb(head, tmp_path, encoder, None)
    assert model.lexical is not None and model.lexical.weight == pytest.approx(0.6)
    texts = ["refund my purchase", "what is the weather tomorrow"]
    plain, mixed = head.predict_batch(texts), model.predict_batch(texts)
    assert [p.out_of_scope for p in plain] == [p.out_of_scope for p in mixed]  # the verdict is the model's own
    scored = head.scores(texts)
    expected = 0.4 * scored.probs + 0.6 * vote.probs(texts)
    assert np.allclose(dataclasses.replace(head, lexical=vote).ranking_probs(texts, scored), expected)


def test_a_model_on_other_intents_keeps_its_own_ranking(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    (tmp_path / "intent").mkdir()
    fit_lexical(TEXTS, Y, LABELS, weight=0.5).save(tmp_path / "intent")
    other = fit_head(_examples()[:12], encoder)  # two intents only
    assert attach_kb(other, tmp_path, encoder, None).lexical is None
    (tmp_path / "intent" / "lexical.json").write_text("{broken", encoding="utf-8")
    notes: list[str] = []
    assert attach_kb(other, tmp_path, encoder, None, notes=notes).lexical is None and "unreadable" in notes[0]


def test_a_topic_only_fit_cannot_learn_full_stops_as_a_topic() -> None:
    # Off-topic rows written as several sentences, real questions as one: the style a KB's spam and its
    # questions really differ by.  A full-style probe learns the ". " and moves on full stops alone.
    in_scope = ["where is my parcel", "my parcel has not arrived", "track my order please", "when will my order come",
                "has my parcel shipped yet", "my order is late"]
    off_topic = ["Cheap watches. Limited offer. Buy now.", "Win a prize. Click here. Act fast.",
                 "Hot singles nearby. Meet them today.", "We do SEO. Rank first. Call us.",
                 "Crypto gains. Double your money. Join now.", "Free loans. No checks. Apply today."]
    texts, y = in_scope + off_topic, np.array([0] * len(in_scope) + [1] * len(off_topic))
    full = fit_lexical(texts, y, ("in", "off"))
    topic = fit_lexical(texts, y, ("in", "off"), topic_terms_only=True)
    assert ". " in full.vocabularies[1]
    assert not [t for v in topic.vocabularies for t in v if t.rstrip(" ")[-1:] in ".?!" or not t.strip()]

    def moved_by_full_stops(vote: LexicalVote) -> float:
        written, bare = vote.probs(["Hello. Thanks. Bye.", "Hello thanks bye"])[:, 1]
        return float(written - bare)

    assert moved_by_full_stops(full) > 0.1
    assert abs(moved_by_full_stops(topic)) < 0.05


def test_a_topic_only_fit_keeps_punctuation_inside_words() -> None:
    texts = ["my bol.com order", "a made.com sofa", "where is my parcel", "my order is late"]
    topic = fit_lexical(texts, np.array([1, 1, 0, 0]), ("in", "off"), topic_terms_only=True)
    assert {".com", ".co", ".c"} <= set(topic.vocabularies[1])  # in two rows each: kept by min_df

"""ROUGE-L, embedding cosine and Jaccard: checked against hand-computed values."""

from __future__ import annotations

import pytest

from csassist.core.textmetrics import embedding_cosine, lcs_length, rouge_l, token_jaccard, tokens


def test_tokens_lowercase_and_drop_punctuation() -> None:
    assert tokens("Hello, World! It's #12345.") == ["hello", "world", "it's", "12345"]


def test_lcs_length_classic_example() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_hand_computed() -> None:
    # pred: "the cat sat on the mat" (6), ref: "the cat is on the mat" (6), LCS = the cat on the mat = 5
    value = rouge_l("the cat sat on the mat", "The cat is on the mat.")
    assert value == pytest.approx(5 / 6)
    assert rouge_l("identical text here", "identical text here") == pytest.approx(1.0)
    assert rouge_l("", "something") == 0.0
    assert rouge_l("alpha beta", "gamma delta") == 0.0


def test_rouge_l_asymmetric_lengths() -> None:
    # pred 2 tokens both in ref of 4 tokens: P = 1, R = 0.5, F = 2/3
    assert rouge_l("refund issued", "your refund was issued") == pytest.approx(2 / 3)


def test_embedding_cosine_with_fake_encoder(fake_encoder) -> None:  # type: ignore[no-untyped-def]
    sims = embedding_cosine(["refund my order", "", "hello"], ["refund my order", "x", "totally different"], fake_encoder)
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert sims[1] == 0.0
    assert sims[2] < 0.9
    with pytest.raises(ValueError):
        embedding_cosine(["a"], [], fake_encoder)


def test_token_jaccard() -> None:
    assert token_jaccard("a b c", "a b c") == 1.0
    assert token_jaccard("a b", "c d") == 0.0
    assert token_jaccard("a b c d", "a b c e") == pytest.approx(3 / 5)

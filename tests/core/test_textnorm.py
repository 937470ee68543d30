"""Issue 10.1: one normal form for every text that enters csassist (no lone surrogates, NFC, \\n)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csassist.core.textnorm import normalize_text
from csassist.core.types import Message
from tests.hostile_corpus import HOSTILE_NAMED, SURROGATES


@pytest.mark.parametrize(("name", "text"), SURROGATES, ids=[n for n, _ in SURROGATES])
def test_lone_surrogates_become_replacement_characters(name: str, text: str) -> None:
    out = normalize_text(text)
    out.encode("utf-8")  # would raise on a surrogate
    assert "\ufffd" in out
    assert len(out) == len(text)  # one U+FFFD per lone half: nothing else moves


def test_a_valid_pair_left_in_a_str_is_joined() -> None:
    assert normalize_text("ok \ud83d\ude00") == "ok \U0001f600"


def test_line_ends_nul_and_nfc() -> None:
    assert normalize_text("a\r\nb\rc\x00d") == "a\nb\ncd"
    assert normalize_text("cafe\u0301") == "caf\u00e9"
    assert normalize_text("plain ascii \x1b[2J stays") == "plain ascii \x1b[2J stays"  # escapes are shown, not lost


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=60))
def test_property_output_is_encodable_nfc_and_idempotent(text: str) -> None:
    out = normalize_text(text)
    out.encode("utf-8")
    assert unicodedata.is_normalized("NFC", out) and "\r" not in out and "\x00" not in out
    assert normalize_text(out) == out


@pytest.mark.parametrize(("name", "text"), HOSTILE_NAMED, ids=[n for n, _ in HOSTILE_NAMED])
def test_every_message_is_normalised_at_construction(name: str, text: str) -> None:
    """Whoever builds a Message (feed, webhook, CLI, UI), the engine gets encodable NFC text."""
    message = Message("c-1", "customer", text, customer="Ana \udfff")
    message.text.encode("utf-8")
    assert message.customer == "Ana \ufffd"
    assert message.text == normalize_text(text)


@pytest.mark.real_model
def test_the_real_tokenizer_never_sees_a_lone_surrogate(real_encoder) -> None:  # type: ignore[no-untyped-def]
    """At 7a33194 a lone surrogate made the tokenizer raise in the analysis worker."""
    vectors = real_encoder.encode(["x \ud800 y", "where is my order \ud83d", "thanks"])
    assert vectors.shape[0] == 3

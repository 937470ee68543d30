"""One abbreviation rule for the reply side's sentence splitters (extractive, grounding)."""

from __future__ import annotations

import pytest

from csassist.core.abbreviations import ends_with_abbreviation
from csassist.core.reply.extractive import split_sentences as passage_sentences
from csassist.core.reply.grounding import sentence_spans


@pytest.mark.parametrize(("left", "following", "expected"), [
    ("Include your order number (e.g.", "LK-123456).", True),
    ("If a Larkspur & Co.", "product is recalled", True),
    ("Written by Dr.", "Jansen", True),
    ("Ask for form No.", "5 at the desk", True),
    ("Can I pay later? No.", "You pay at checkout.", False),  # "No." alone is an answer
    ("I play the piano.", "It was damaged.", False),  # not "no." as a word
    ("I was the first.", "Then it broke.", False),  # not "st."
    ("It is in the admin.", "Please check.", False),  # not "min."
    ("Nothing here.", "", False),
])
def test_whole_word_abbreviations_keep_the_sentence_going(left: str, following: str, expected: bool) -> None:
    assert ends_with_abbreviation(left, following) is expected


TEXT = ("Include your order number (e.g. LK-123456) in the subject. If a Larkspur & Co. product is recalled, "
        "we email you. I play the piano. It arrived broken.")
SENTENCES = ["Include your order number (e.g. LK-123456) in the subject.",
             "If a Larkspur & Co. product is recalled, we email you.", "I play the piano.", "It arrived broken."]


def test_the_reply_sides_splitters_agree_on_abbreviations() -> None:
    assert passage_sentences(TEXT) == SENTENCES
    assert [TEXT[a:b] for a, b in sentence_spans(TEXT)] == SENTENCES


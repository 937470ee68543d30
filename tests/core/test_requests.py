"""Two requests in one message: where it is cut, how the parts weigh, and that only the ranking changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from csassist.core.learn.intent_head import fit_intent_head
from csassist.core.understand.intent_format import load_head
from csassist.core.understand.requests import lead_weighted, split_requests
from tests.core.test_intent import _examples
from tests.fakes import FakeEncoder


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("Please cancel LK-308815, and how long will the refund take to reach my Mastercard?",
         ["Please cancel LK-308815", "how long will the refund take to reach my Mastercard?"]),
        ("Can I use a euro gift card on the UK store? And do you deliver to Jersey?",
         ["Can I use a euro gift card on the UK store?", "do you deliver to Jersey?"]),
        ("I need to reset my password, and while you're at it please stop the marketing texts.",
         ["I need to reset my password", "while you're at it please stop the marketing texts."]),
        ("I think my duvet is lost. Also, I'd like to speak to someone about it.",  # its own comma after a pause
         ["I think my duvet is lost.", "I'd like to speak to someone about it."]),
        ("The lamp broke, can you help? And separately, I'd like an invoice for LK-204817.",
         ["The lamp broke, can you help?", "I'd like an invoice for LK-204817."]),
    ],
)
def test_a_conjunction_that_starts_a_new_request_cuts_the_message(text: str, parts: list[str]) -> None:
    assert split_requests(text) == parts


@pytest.mark.parametrize(
    "text",
    [
        "The lamp and the shade arrived broken.",  # "and" joining two things, not two requests
        "I ordered a lamp and the shade is broken",  # no pause before "and the": one request
        "Where is my order?",
        "refund please and thanks",  # "thanks" is no request
        # a long message: its first part is context ("I pre-ordered..."), so it is read whole
        "Hi! In January I pre-ordered the velvet armchair in rust with a ships-by date of 14 March, and I've "
        "just had an email saying it has moved to late May. We are moving abroad in April, so can I back out "
        "of this and get my money back?",
        "",
    ],
)
def test_one_request_is_not_cut(text: str) -> None:
    assert split_requests(text) == []


def test_the_first_request_weighs_most_and_the_whole_message_keeps_a_quarter() -> None:
    whole = np.array([0.5, 0.5, 0.0])
    parts = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    mixed = lead_weighted(whole, parts)
    assert mixed == pytest.approx([0.125 + 0.75 * 5 / 6, 0.125, 0.75 * 1 / 6])  # weights 1 and 0.2
    assert mixed.sum() == pytest.approx(1.0)


def test_the_ranking_leans_to_the_lead_request_but_the_verdict_does_not_change(
    tmp_path: Path, fake_encoder: FakeEncoder
) -> None:
    fit_intent_head(_examples(), fake_encoder, tmp_path / "intent")
    model = load_head(tmp_path / "intent", fake_encoder)
    text = "please refund the payment, and can you change my delivery address"
    lead = model.predict(text)
    plain = dataclasses.replace(model, lead_request=False).predict(text)
    assert lead.top[0].intent == "refund"
    lead_p = {s.intent: s.probability for s in lead.top}
    plain_p = {s.intent: s.probability for s in plain.top}
    assert lead_p["refund"] - lead_p["change_address"] > plain_p["refund"] - plain_p["change_address"]
    assert lead.out_of_scope == plain.out_of_scope and lead.own_top == plain.top
    assert lead.requests == ("please refund the payment", "can you change my delivery address") and not plain.requests
    # one request: exactly the model's own prediction
    assert model.predict("where is my parcel") == dataclasses.replace(model, lead_request=False).predict("where is my parcel")

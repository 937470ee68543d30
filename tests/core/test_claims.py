"""Claim extraction on its own: what :func:`extract_claims` finds in support replies, and what it must not.

Grounding (tests/core/test_grounding.py) checks verdicts; these tests pin the reader under it, kind by
kind, so a change to one pattern shows up here as the claim it gained or lost rather than as a
verdict that flipped somewhere downstream.  Amounts, phones, e-mails, dates and keyword-led ids come
from :func:`csassist.core.understand.entities.extract_entities`; percentages, durations, bare ids,
URLs, placeholders and promises from the patterns of claims.py itself.  No model is loaded.
"""

from __future__ import annotations

import pytest

from csassist.core.reply.claims import MAX_CHARS, URL, WINDOW_CHARS, RawClaim, extract_claims, norm_url


def found(text: str) -> list[tuple[str, str, str]]:
    """``(kind, text, key)`` of every claim in ``text``, in order."""
    return [(c.kind, c.text, c.key) for c in extract_claims(text)]


def keys(text: str, kind: str) -> list[str]:
    """The keys of the claims of one kind."""
    return [c.key for c in extract_claims(text) if c.kind == kind]


# -- a whole reply ------------------------------------------------------------------------------------
def test_a_typical_refund_reply_yields_each_fact_once_in_order_with_offsets_into_the_text() -> None:
    reply = "Your refund of 49.99 € for order #48213 will arrive within 5-10 business days."
    claims = extract_claims(reply)
    assert [(c.kind, c.text, c.key) for c in claims] == [
        ("promise", "refund", "refund"),
        ("amount", "49.99 €", "49.99 EUR"),
        ("order_id", "#48213", "48213"),
        ("duration", "5-10 business days", "5-10 day"),
    ]
    assert all(reply[c.start : c.end] == c.text for c in claims)
    assert [c.start for c in claims] == sorted(c.start for c in claims)


def test_several_claims_in_one_sentence_are_all_found() -> None:
    text = "I guarantee a discount voucher of 10% off your next order, valid for 30 days at www.shop.example/deals."
    assert found(text) == [
        ("promise", "guarantee", "commitment"),
        ("promise", "discount", "discount"),
        ("promise", "voucher", "discount"),
        ("percentage", "10%", "10-10"),
        ("duration", "30 days", "30-30 day"),
        ("url", "www.shop.example/deals", "shop.example/deals"),
    ]


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "Thanks for reaching out, happy to help!"])
def test_text_without_facts_has_no_claims(text: str) -> None:
    assert extract_claims(text) == ()


def test_the_result_is_an_immutable_cached_tuple() -> None:
    """Grounding asks for the same passage sentences' claims draft after draft: they are read once."""
    text = "We refund EUR 250 within 14 days."
    first = extract_claims(text)
    assert isinstance(first, tuple) and all(isinstance(c, RawClaim) for c in first)
    assert extract_claims(text) is first


# -- amounts ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("written", ["EUR 250", "250 EUR", "€250", "250 €", "€ 250.00", "250 euros"])
def test_an_amount_is_keyed_by_value_and_currency_whichever_order_it_is_written_in(written: str) -> None:
    assert found(f"The total charged was {written}.") == [("amount", written, "250.00 EUR")]


def test_amounts_in_different_currencies_get_different_keys() -> None:
    assert keys("That is £5, $5.00 or 5 EUR.", "amount") == ["5.00 GBP", "5.00 USD", "5.00 EUR"]


# -- percentages and durations ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("a 12% restocking fee", "12-12"),
        ("100 % of the price", "100-100"),
        ("keep it with a 20–40 % refund", "20-40"),
        ("15-20% off", "15-20"),
        ("10 to 15 percent", "10-15"),
        ("7 per cent", "7-7"),
        ("a 1,5% fee", "1.5-1.5"),
    ],
)
def test_percentages_are_keyed_as_a_range(text: str, key: str) -> None:
    assert keys(text, "percentage") == [key]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("within 5-10 business days", "5-10 day"),
        ("in 2 to 3 weeks", "2-3 week"),
        ("please allow three working days", "3-3 day"),
        ("it takes a day", "1-1 day"),
        ("our 14-day return window", "14-14 day"),
        ("within 24 hours", "24-24 hour"),
        ("a warranty of twelve months", "12-12 month"),
        ("within 1 month", "1-1 month"),
    ],
)
def test_durations_are_keyed_as_a_range_with_a_singular_unit(text: str, key: str) -> None:
    assert keys(text, "duration") == [key]


# -- dates, contacts, links -----------------------------------------------------------------------
def test_dates_with_a_digit_are_read_against_a_fixed_anchor_year() -> None:
    assert found("It will arrive on 12 March 2024.") == [("date", "12 March 2024", "2024-03-12")]
    assert keys("We ship by 2024-03-12.", "date") == ["2024-03-12"]
    assert keys("Expect it on March 12.", "date") == ["2000-03-12"]  # no year: the anchor's, never today's


@pytest.mark.parametrize("text", ["It arrives tomorrow.", "We ship on Friday.", "Delivered yesterday."])
def test_relative_dates_are_not_claims(text: str) -> None:
    assert keys(text, "date") == []


def test_phone_email_and_url_keys_ignore_formatting() -> None:
    text = "Call us on +44 20 7946 0958, email Support@Shop.example or see https://www.shop.example/returns/."
    assert found(text) == [
        ("phone", "+44 20 7946 0958", "079460958"),  # the last nine digits: country code and spacing differ
        ("email", "Support@Shop.example", "support@shop.example"),
        ("url", "https://www.shop.example/returns/", "shop.example/returns"),
    ]


def test_a_refunds_mailbox_is_an_email_not_a_refund_promise() -> None:
    assert found("Write to refunds@shop.example.") == [("email", "refunds@shop.example", "refunds@shop.example")]


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTPS://www.Shop.example/Returns/.", "shop.example/returns"),
        ("http://shop.example/a?b=1,", "shop.example/a?b=1"),
        ("www.shop.example", "shop.example"),
        ("shop.example/", "shop.example"),
    ],
)
def test_norm_url_drops_scheme_www_trailing_punctuation_and_slash(url: str, key: str) -> None:
    assert norm_url(url) == key


def test_url_pattern_stops_at_quotes_and_brackets() -> None:
    match = URL.search("(see <a href='https://evil.example/x'>here</a>)")
    assert match is not None and match.group(0) == "https://evil.example/x"


# -- ids ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("your order #48213", "48213"),
        ("order 00012345", "12345"),  # leading zeros do not make another order
        ("tracking AB123456789GB", "123456789"),
        ("invoice INV-00012345", "12345"),
        ("reference 5551234", "5551234"),
    ],
)
def test_order_tracking_and_invoice_ids_are_keyed_by_their_digits(text: str, key: str) -> None:
    assert keys(text, "order_id") == [key]


@pytest.mark.parametrize("text", ["abc12345def", "a price of 12345.6", "version 1.2.3", "about 3.5x faster", "#12"])
def test_numbers_inside_words_decimals_and_short_numbers_are_not_ids(text: str) -> None:
    assert extract_claims(text) == ()


# -- placeholders and markup --------------------------------------------------------------------------
def test_unfilled_template_slots_are_placeholders() -> None:
    assert found("Hi {{name}}, order [Order Number] ships {{ date }}.") == [
        ("placeholder", "{{name}}", "{{name}}"),
        ("placeholder", "[Order Number]", "[Order Number]"),
        ("placeholder", "{{ date }}", "{{ date }}"),
    ]


@pytest.mark.parametrize("text", ["[bold]Hello[/]", "[b]thanks[/b]", "{{}}", "<p>Hello</p>", "[/]"])
def test_markup_like_text_is_not_a_placeholder(text: str) -> None:
    assert extract_claims(text) == ()


def test_facts_inside_markup_are_still_read_and_offsets_point_at_them() -> None:
    text = "<b>EUR 250</b> [bold]refund[/]"
    claims = extract_claims(text)
    assert [(c.kind, c.key, text[c.start : c.end]) for c in claims] == [
        ("amount", "250.00 EUR", "EUR 250"),
        ("promise", "refund", "refund"),
    ]


# -- promises -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Your money will be returned.", "refund"),
        ("We can reimburse the postage.", "refund"),
        ("Happy to send you a new one.", "replacement"),
        ("Here is a promo code for you.", "discount"),
        ("As a goodwill gesture, a gift card.", "compensation"),
        ("The return is free of charge.", "free shipping"),
        ("We can waive the fee.", "free shipping"),
    ],
)
def test_promise_categories(text: str, category: str) -> None:
    assert category in keys(text, "promise")


def test_a_commitment_whose_verb_is_a_promise_is_reported_once_as_that_promise() -> None:
    assert found("We will refund you.") == [("promise", "refund", "refund")]


@pytest.mark.parametrize(
    "text",
    ["We will check with the warehouse and get back to you.", "I'll look into it.", "We will keep you updated."],
)
def test_holding_answers_commit_to_nothing(text: str) -> None:
    assert extract_claims(text) == ()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("We are going to ship it tomorrow.", "We are going to ship"),
        ("We'll issue a new invoice.", "We'll issue"),
        ("We promise it arrives.", "promise"),
    ],
)
def test_other_commitments_are_promises(text: str, said: str) -> None:
    assert ("promise", said, "commitment") in found(text)


# -- long and untrusted text --------------------------------------------------------------------------
def test_claims_far_into_a_long_message_keep_offsets_into_the_whole_text() -> None:
    filler = "word " * (3 * WINDOW_CHARS // 5)  # three windows' worth of text before the fact
    text = filler + "You get EUR 250 back within 14 days."
    amount = [c for c in extract_claims(text) if c.kind == "amount"]
    assert len(amount) == 1 and amount[0].start > 2 * WINDOW_CHARS
    assert text[amount[0].start : amount[0].end] == "EUR 250"
    assert keys(text, "duration") == ["14-14 day"]


def test_text_past_max_chars_is_not_read() -> None:
    text = "x " * (MAX_CHARS // 2) + "We refund EUR 250."
    assert extract_claims(text) == ()
    assert keys(text[: MAX_CHARS - 40] + " EUR 250 ", "amount") == ["250.00 EUR"]


def test_a_long_run_without_spaces_is_cut_into_windows_without_losing_a_later_fact() -> None:
    text = "a" * (WINDOW_CHARS * 3) + " refund of EUR 250"
    assert found(text)[-2:] == [("promise", "refund", "refund"), ("amount", "EUR 250", "250.00 EUR")]


def test_a_claim_straddling_a_window_cut_is_still_found() -> None:
    text = ("word " * 200)[:592] + " EUR 250 within 5-10 business days"  # the cut falls between EUR and 250
    assert keys(text, "amount") == ["250.00 EUR"]
    assert keys(text, "duration") == ["5-10 day"]
    claims = extract_claims(text)
    assert all(text[c.start:c.end].strip() == c.text for c in claims)  # positions in the whole text


def test_claims_across_many_windows_are_each_found_once() -> None:
    filler = "and then some more words that say nothing much at all "
    pieces = [f"{filler * 3}we refund EUR {100 + i} within {i + 2} days. " for i in range(40)]
    text = "".join(pieces)
    assert len(text) > 10 * 600
    assert keys(text, "amount") == [f"{100 + i:.2f} EUR" for i in range(40)]
    assert keys(text, "duration") == [f"{i + 2}-{i + 2} day" for i in range(40)]

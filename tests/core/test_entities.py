"""Entity extraction on hand-written messages (every type, normalisation, overlaps, bad input)."""

from __future__ import annotations

from datetime import datetime

import pytest

from csassist.core.understand.entities import extract_entities, iban_valid, luhn_valid, normalise_amount

NOW = datetime(2026, 11, 28, 10, 0)  # a Saturday


def _by_type(text: str, **kw) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[str]] = {}
    for e in extract_entities(text, now=NOW, **kw):
        out.setdefault(e.type, []).append(e.value)
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where is LK-204817?", ["LK-204817"]),
        ("my order #204817 is late", ["204817"]),
        ("order 204817 never came", ["204817"]),
        ("order number: 113542617735903", ["113542617735903"]),  # long, but not Luhn-valid: not a card
        ("problems with cancelling purchase 00123842", ["00123842"]),
        ("Order no. AB-99812 please", ["AB-99812"]),
    ],
)
def test_order_ids(text: str, expected: list[str]) -> None:
    assert _by_type(text).get("order_id") == expected


@pytest.mark.parametrize(
    "text",
    [
        "my card #5500000000000004 was declined",
        "order 4111111111111111 failed",
        "order number: 113542617735902",
        "invoice 4012888888881881 is wrong",
        "purchase 4111-1111-1111-1111",
    ],
)
def test_luhn_valid_card_after_id_keyword_is_a_card_not_an_id(text: str) -> None:
    """Issue 10.5: a card typed after "#", "order" or "invoice" is masked as a card, never kept as an id."""
    found = _by_type(text)
    assert "order_id" not in found and "invoice_id" not in found
    assert len(found["card_number"]) == 1 and found["card_number"][0].startswith("**** **** **** ")


def test_configured_order_pattern_matching_the_number_exactly_keeps_it_an_order() -> None:
    """A company whose order numbers are Luhn-valid 15-digit runs says so in config, and wins."""
    assert _by_type("order number: 113542617735902", order_patterns=[r"\b\d{15}\b"]) == {
        "order_id": ["113542617735902"]
    }
    # A pattern that only covers part of the card does not unmask it.
    assert "order_id" not in _by_type("card #5500000000000004", order_patterns=[r"\d{6}"])


def test_no_order_id_without_digits() -> None:
    assert "order_id" not in _by_type("my order arrived broken and the order is wrong")
    assert "order_id" not in _by_type("I ordered 3 lamps")


def test_invoice_and_tracking() -> None:
    found = _by_type("Invoice INV-2026-004512 and bill #00108, tracking LKP1234567890NL")
    assert found["invoice_id"] == ["INV-2026-004512", "00108"]
    assert found["tracking_code"] == ["LKP1234567890NL"]
    assert _by_type("tracking number 1Z999AA10123456784")["tracking_code"] == ["1Z999AA10123456784"]


def test_custom_company_patterns() -> None:
    found = _by_type("Bestelnummer ZX/77-1 en zending QQ123", order_patterns=[r"ZX/\d+-\d"],
                     tracking_patterns=[r"QQ\d{3}", "(broken"])
    assert found["order_id"] == ["ZX/77-1"] and found["tracking_code"] == ["QQ123"]


def test_email_phone() -> None:
    found = _by_type("Mail Jane.Doe+shop@Example.co.uk or call +31 6 12345678 / 020 7946 0958 / (415) 555-0123")
    assert found["email"] == ["jane.doe+shop@example.co.uk"]
    assert found["phone"] == ["+31612345678", "02079460958", "4155550123"]
    assert _by_type("ring me on +44 7700 900123")["phone"] == ["+447700900123"]
    assert _by_type("call 06-12345678")["phone"] == ["0612345678"]


def test_money() -> None:
    found = _by_type("I paid €12,50 then $1,299.00, 15 EUR, 1499 dollars and £3")
    assert found["money"] == ["12.50 EUR", "1299.00 USD", "15.00 EUR", "1499.00 USD", "3.00 GBP"]
    assert normalise_amount("1.299,00") == "1299.00"


def test_dates() -> None:
    found = _by_type("Ordered 2026-03-12, on 12 March, March 12th, yesterday and last Friday; 3 days ago")
    assert found["date"] == ["2026-03-12", "2026-03-12", "2026-03-12", "2026-11-27", "2026-11-27", "2026-11-25"]
    assert _by_type("it came 5/11/2026")["date"] == ["2026-11-05"]
    assert "date" not in _by_type("31 February")
    assert _by_type("I may 2 things")  .get("date") is None


def test_cards_luhn_and_masked() -> None:
    ents = extract_entities("card 4111 1111 1111 1111 and 4111 1111 1111 1112", now=NOW)
    cards = [e for e in ents if e.type == "card_number"]
    assert len(cards) == 1
    assert cards[0].value == "**** **** **** 1111" and cards[0].text == "**** **** **** 1111"
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_iban() -> None:
    assert iban_valid("NL91ABNA0417164300") and not iban_valid("NL92ABNA0417164300")
    assert _by_type("pay to NL91 ABNA 0417 1643 00 please")["iban"] == ["NL91ABNA0417164300"]


def test_spans_point_into_text() -> None:
    text = "Order LK-204817: email a@b.com, €5 yesterday"
    for e in extract_entities(text, now=NOW):
        assert text[e.start : e.end] == e.text
    spans = sorted((e.start, e.end) for e in extract_entities(text, now=NOW))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


@pytest.mark.parametrize("text", ["", "😀🎉🔥", "где мой заказ 204817? 注文番号", "x" * 100_000, "1" * 5000])
def test_bad_input(text: str) -> None:
    extract_entities(text, now=NOW)

"""PII redaction: typed placeholders for emails, phones, cards, IBANs and other account numbers.

Two uses with different promises:

* :func:`redact` (``reversible=True``) for display: ``[EMAIL_1]`` etc. plus a mapping back to the
  original, kept only in memory, so a screen can hide PII and reveal it on demand.
* :func:`redact_for_storage` for anything written to disk (feedback log, training data, exports):
  irreversible, and deliberately greedier than the entity extractor.  After the precise detectors it
  sweeps for anything that merely *looks* like a contact detail or an account number (an ``@`` with a
  dot after it, runs of 7+ digits with separators, IBAN-shaped tokens without a valid checksum), so
  a typo'd or unusual format is over-redacted rather than stored.  Order, invoice and tracking ids are
  kept: the agent needs them and they identify a purchase, not a person.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from csassist.core.understand.entities import CARD, EMAIL, IBAN, PHONE, extract_entities, iban_valid, luhn_valid

#: Entity type -> placeholder tag.
PII_TAGS = {"email": "EMAIL", "phone": "PHONE", "card_number": "CARD", "iban": "IBAN"}
_KEEP_TYPES = ("order_id", "invoice_id", "tracking_code", "date", "money")
PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|CARD|CVV|IBAN|NUMBER)_\d+\]")

#: A card's security code after its label ("CVV 123", "cvc: 4567", "security code is 123"): only the
#: digits are replaced, so the sentence still reads.  Bounded gaps keep the scan linear.
CVV = re.compile(
    r"\b(?:cvv2?|cvc2?|cvn|cid|csc|card\s{1,3}verification(?:\s{1,3}(?:value|code))?|security\s{1,3}code)"
    r"(?:\s{1,3}(?:code|number|no\.?))?\s{0,3}(?:is|was|=|:|-|#)?\s{0,3}(?P<code>\d{3,4})(?!\d)",
    re.IGNORECASE,
)
#: Stored texts are cut to this many characters first: nothing in a support reply needs more, and it
#: bounds the cost of redaction (every step is linear, this caps the constant).
MAX_STORED_CHARS = 20_000

# Greedy sweeps used only for storage.  The e-mail sweep may start only where a token starts (the
# look-behind) and its runs are possessive, so each character is scanned a bounded number of times:
# the old ``[^…]+@[^…]+\.[^…]+`` took cubic time on "a@a@a@…" (15 s for 2,000 characters).
_TOKEN_SEP = "\\s\\[\\]<>()\"',;:"
_LOOSE_EMAIL = re.compile(f"(?<![^{_TOKEN_SEP}])[^{_TOKEN_SEP}@]++@[^{_TOKEN_SEP}]++")
_LOOSE_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){10,30}\b")
_DIGIT_RUN = re.compile(r"(?<![\w])\+?\(?\d(?:[ .\-()/\u00a0]{0,2}\d){6,}\)?")


@dataclass(frozen=True)
class Redaction:
    """Redacted text plus ``placeholder -> original`` (empty for irreversible redaction)."""

    text: str
    mapping: dict[str, str] = field(default_factory=dict)


def _spans(text: str) -> list[tuple[int, int, str, str]]:
    """PII spans ``(start, end, tag, original)`` from the precise detectors, non-overlapping."""
    spans = []
    taken: list[tuple[int, int]] = []
    for ent in extract_entities(text):
        tag = PII_TAGS.get(ent.type)
        if tag:
            spans.append((ent.start, ent.end, tag, text[ent.start : ent.end]))
        taken.append((ent.start, ent.end))
    for m in CVV.finditer(text):
        start, end = m.span("code")
        if not _overlaps(taken, start, end):
            spans.append((start, end, "CVV", m.group("code")))
    return sorted(spans)


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``[start, end)`` overlaps one of ``spans`` (sorted, non-overlapping): O(log n)."""
    i = bisect.bisect_right(spans, (start, float("inf")))
    if i > 0 and spans[i - 1][1] > start:
        return True
    return i < len(spans) and spans[i][0] < end


def _keep_spans(text: str) -> list[tuple[int, int]]:
    """Spans of order/invoice/tracking ids, dates and amounts, which the storage sweep must not destroy."""
    return [(e.start, e.end) for e in extract_entities(text) if e.type in _KEEP_TYPES]


def redact(text: str, *, reversible: bool = False) -> Redaction:
    """Replace detected PII with numbered typed placeholders (``[EMAIL_1]``, ``[PHONE_2]``...).

    The same original value gets the same placeholder within one text.  With ``reversible=True`` the
    mapping to restore it is returned (for display only: never persist it).
    """
    if not text:
        return Redaction(text or "", {})
    counters: dict[str, int] = {}
    seen: dict[tuple[str, str], str] = {}
    mapping: dict[str, str] = {}
    out: list[str] = []
    pos = 0
    for start, end, tag, original in _spans(text):
        key = (tag, original)
        if key not in seen:
            counters[tag] = counters.get(tag, 0) + 1
            seen[key] = f"[{tag}_{counters[tag]}]"
            mapping[seen[key]] = original
        out.append(text[pos:start])
        out.append(seen[key])
        pos = end
    out.append(text[pos:])
    return Redaction("".join(out), mapping if reversible else {})


def restore(redaction: Redaction) -> str:
    """Put the originals back into a reversibly redacted text (unknown placeholders stay as they are)."""
    if not redaction.mapping:
        return redaction.text
    return PLACEHOLDER.sub(lambda m: redaction.mapping.get(m.group(0), m.group(0)), redaction.text)


def _sweep(text: str, rx: re.Pattern[str], tag: str, keep: list[tuple[int, int]], check=None) -> str:  # type: ignore[no-untyped-def]
    """Replace every ``rx`` match not inside a kept span (and passing ``check``) with ``[TAG_n]``."""
    count = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal count
        if _overlaps(keep, m.start(), m.end()):
            return m.group(0)
        if PLACEHOLDER.fullmatch(m.group(0)) or (check is not None and not check(m.group(0))):
            return m.group(0)
        count += 1
        return f"[{tag}_{count}]"

    return rx.sub(repl, text)


def _has_domain_dot(candidate: str) -> bool:
    """The loose e-mail shape: a dot after the ``@`` with at least one character on each side."""
    at = candidate.find("@")
    return "." in candidate[at + 2 : len(candidate) - 1]


def redact_for_storage(text: str) -> str:
    """Irreversibly remove PII before anything is written to disk (greedy by design, see module doc)."""
    if not text:
        return text or ""
    if len(text) > MAX_STORED_CHARS:
        text = text[:MAX_STORED_CHARS] + f"… [cut: {len(text) - MAX_STORED_CHARS} more characters not stored]"
    redacted = redact(text).text
    keep = _keep_spans(redacted)
    redacted = _sweep(redacted, _LOOSE_EMAIL, "EMAIL", keep, check=_has_domain_dot)
    keep = _keep_spans(redacted)
    redacted = _sweep(redacted, _LOOSE_IBAN, "IBAN", keep, check=lambda s: sum(c.isdigit() for c in s) >= 8)
    keep = _keep_spans(redacted)
    redacted = _sweep(redacted, _DIGIT_RUN, "NUMBER", keep)
    return redacted


def contains_pii(text: str) -> bool:
    """Whether a precise detector still finds an email, phone, Luhn-valid card or valid IBAN in ``text``."""
    if EMAIL.search(text) or PHONE.search(text) and any(e.type == "phone" for e in extract_entities(text)):
        return True
    if any(luhn_valid(re.sub(r"\D", "", m.group(0))) for m in CARD.finditer(text)):
        return True
    return any(iban_valid(m.group(0)) for m in IBAN.finditer(text))

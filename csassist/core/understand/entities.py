"""Entities in a customer message: ids, contact details, money, dates, card numbers, IBANs.

Rule-based on purpose: every type here has a shape (a checksum, a currency, a keyword before it)
that regular expressions capture precisely, in microseconds, with no training data, and a company
can add its own order/tracking patterns in config.toml.  Each hit is an :class:`Entity` with the span
as written, its type and a normalised value (ISO date, ``12.50 EUR``, lower-cased email, masked
card).  Overlapping hits are resolved by a fixed priority (ids and checksummed numbers first) and
then by length, so ``order 00123842`` is an order number, not a phone number.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from csassist.core.types import Entity
from csassist.core.understand.user_patterns import finditer_user_pattern

# ------------------------------------------------------------------------------------------- patterns

#: The demo company's formats (Larkspur & Co.); generic keyword rules work for any company.
DEFAULT_ORDER_PATTERNS: tuple[str, ...] = (r"\bLK-\d{6}\b",)
DEFAULT_TRACKING_PATTERNS: tuple[str, ...] = (r"\bLKP\d{10}NL\b",)
DEFAULT_INVOICE_PATTERNS: tuple[str, ...] = (r"\bINV-\d{4}-\d{6}\b",)

# Every quantifier over untrusted text is bounded (an id is at most 31 characters, the gaps between
# keyword and id a few spaces): an unbounded ``\s*`` next to another made "order" + 5,000 spaces take
# seconds.  With bounded repeats each match attempt costs O(1) and a whole scan stays linear.
_ID_TOKEN = r"#?\s?(?=[A-Za-z0-9-]{0,30}\d)[A-Za-z0-9][A-Za-z0-9-]{2,30}"
_GAP = r"\s{0,3}"
_ORDER_WORDS = r"(?:orders?|purc?hases?|purchse|purchace|bestelling|bestellung|commande)"
_ID_WORDS = r"(?:\s{1,3}(?:number|no\.?|nr\.?|num\.?|id|ref(?:erence)?))?"
ORDER_CONTEXT = re.compile(
    rf"\b{_ORDER_WORDS}{_ID_WORDS}{_GAP}(?:is|was|:)?{_GAP}(?P<id>{_ID_TOKEN})(?![A-Za-z0-9@])", re.IGNORECASE
)
INVOICE_CONTEXT = re.compile(
    rf"\b(?:invoices?|bills?|receipts?|factuur|rechnung){_ID_WORDS}{_GAP}(?:is|was|:)?{_GAP}(?P<id>{_ID_TOKEN})"
    r"(?![A-Za-z0-9@])",
    re.IGNORECASE,
)
TRACKING_CONTEXT = re.compile(
    rf"\b(?:tracking|track{_GAP}(?:&|and){_GAP}trace|shipment|parcel|package){_ID_WORDS}(?:\s{{1,3}}code)?{_GAP}"
    rf"(?:is|was|:)?{_GAP}"
    r"(?P<id>(?=[A-Za-z0-9]{0,29}\d)(?=[A-Za-z0-9]{0,29}[A-Za-z])[A-Za-z0-9]{10,30})\b",
    re.IGNORECASE,
)
HASH_ID = re.compile(r"(?<![\w&])#(?P<id>\d{4,20})\b")
#: Local parts may be internationalised (RFC 6531): any word character, so "émile@x.fr" is caught too.
#: Domain labels are bounded (63 characters, at most 8 dots) so a flood of "a@bbbb…" costs linear time.
EMAIL = re.compile(
    r"(?<![\w.+-])[^\W_](?:[\w.%+-]{0,63})@[^\W_](?:[\w-]{0,62})(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}\b"
)
#: 13-19 digits (never starting with 0: no card network uses it), optionally grouped; Luhn-checked afterwards.
CARD = re.compile(r"(?<![\d-])[1-9](?:[ -]?\d){12,18}(?![\d])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_SEP = r"[ .\-\u00a0/]?"
PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+|00)\d{1,3}" + _SEP + r"(?:\(0\)" + _SEP + r")?\(?\d{1,4}\)?(?:" + _SEP + r"\d{2,4}){1,5}"  # international
    r"|\(?0\d{1,4}\)?(?:" + _SEP + r"\d{2,4}){1,5}"  # national trunk prefix 0 (NL, UK, DE...)
    r"|\(?[2-9]\d{2}\)?[ .\-]\d{3}[ .\-]\d{4}"  # North American (555) 123-4567
    r")(?!\w)"
)
_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CURRENCY_WORDS = {
    "eur": "EUR", "euro": "EUR", "euros": "EUR", "usd": "USD", "dollar": "USD", "dollars": "USD",
    "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "chf": "CHF", "jpy": "JPY", "cad": "CAD", "aud": "AUD",
    "sek": "SEK", "nok": "NOK", "dkk": "DKK", "pln": "PLN", "inr": "INR",
}
#: Ungrouped amounts stop at 7 digits: a longer digit run next to a currency is more likely a phone number.
_AMOUNT = r"\d{1,3}(?:[.,\u00a0 ]\d{3})+(?:[.,]\d{1,2})?|\d{1,7}(?:[.,]\d{1,2})?"
_CUR_SYM = r"[€$£¥₹]"
_CUR_CODE = r"(?:EUR|USD|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN|INR)"
_CUR_WORD = r"(?:euros?|dollars?|pounds?)"
MONEY = re.compile(
    rf"(?:(?P<pre>{_CUR_SYM}|\b{_CUR_CODE})\s?(?P<a1>{_AMOUNT})(?![\d])"
    rf"|(?<![\w.,])(?P<a2>{_AMOUNT})\s?(?P<post>{_CUR_SYM}|{_CUR_CODE}\b|{_CUR_WORD}\b))",
    re.IGNORECASE,
)

_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")]
    )
    for m in names
}
_WEEKDAYS = {d: i for i, d in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])}
_MONTH_RE = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY_RE = r"(?P<wd>" + "|".join(_WEEKDAYS) + r")"
DATE_ISO = re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")
DATE_NUMERIC = re.compile(r"(?<![\d/.-])(?P<d>\d{1,2})[/.](?P<m>\d{1,2})[/.](?P<y>\d{4}|\d{2})(?![\d/.])")
DATE_DAY_MONTH = re.compile(
    rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_RE}(?:,?\s+(?P<year>\d{{4}}))?\b", re.IGNORECASE
)
DATE_MONTH_DAY = re.compile(
    rf"\b{_MONTH_RE}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{{4}}))?\b", re.IGNORECASE
)
DATE_RELATIVE = re.compile(r"\b(?:the\s+day\s+before\s+yesterday|yesterday|today|tonight|tomorrow)\b", re.IGNORECASE)
DATE_WEEKDAY = re.compile(rf"\b(?P<rel>last|this|next|on)\s+{_WEEKDAY_RE}\b", re.IGNORECASE)
DATE_AGO = re.compile(r"\b(?P<n>\d{1,3}|a|one|two|three|four|five|six|seven)\s+(?P<unit>days?|weeks?)\s+ago\b", re.IGNORECASE)
_SMALL_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}

#: Overlap resolution: lower wins; then the longer span.
_PRIORITY = {
    "order_id": 0, "invoice_id": 0, "tracking_code": 0, "card_number": 1, "iban": 1, "email": 2,
    "phone": 3, "money": 4, "date": 5,  # a phone followed by a currency sign is still a phone
}


# ------------------------------------------------------------------------------------------- checksums


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies (catches most random digit runs)."""
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    s = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def mask_card(digits: str) -> str:
    """``**** **** **** 1234``: enough to recognise a card, useless to anyone who reads the screen."""
    return "**** **** **** " + digits[-4:]


# ------------------------------------------------------------------------------------------- normalisers


def normalise_amount(raw: str) -> str:
    """``1.299,00`` / ``1,299.00`` / ``12,50`` / ``12`` -> ``1299.00`` / ``1299.00`` / ``12.50`` / ``12.00``."""
    s = raw.replace("\u00a0", "").replace(" ", "")
    last_sep = max(s.rfind("."), s.rfind(","))
    if last_sep >= 0 and len(s) - last_sep - 1 in (1, 2):
        whole, frac = s[:last_sep], s[last_sep + 1 :]
    else:
        whole, frac = s, ""
    whole = re.sub(r"[.,]", "", whole) or "0"
    return f"{int(whole)}.{(frac + '00')[:2]}"


def _safe_date(y: int, m: int, d: int) -> date | None:
    """A date, or None for impossible ones (31 February)."""
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _weekday_date(rel: str, weekday: int, today: date) -> date:
    """``last Friday`` = the most recent Friday strictly before today; ``next``/``on``/``this`` = upcoming."""
    rel = rel.lower()
    if rel == "last":
        delta = (today.weekday() - weekday) % 7 or 7
        return today - timedelta(days=delta)
    delta = (weekday - today.weekday()) % 7
    if rel == "next" and delta == 0:
        delta = 7
    if rel == "on":  # "it arrived on Monday" usually means the past one
        back = (today.weekday() - weekday) % 7
        return today - timedelta(days=back)
    return today + timedelta(days=delta)


# ------------------------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class _Hit:
    type: str
    start: int
    end: int
    value: str
    shown: str | None = None  # replaces the written text (masked cards)
    configured: bool = False  # found by a company pattern from config (not a keyword rule)


@functools.lru_cache(maxsize=16)
def _builtin(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """The bundled id patterns, compiled once (they are reviewed for linear-time matching)."""
    return tuple(re.compile(p) for p in patterns)


def _id_value(token: str) -> str:
    """An id as a system would look it up: no leading '#', no surrounding spaces, upper case."""
    return token.lstrip("#").strip().upper()


def _ids(text: str, order_patterns: Sequence[str], tracking_patterns: Sequence[str]) -> list[_Hit]:
    """Order numbers, invoice numbers and tracking codes: company patterns first, then keyword rules."""
    hits: list[_Hit] = []
    for kind, configured in (("order_id", order_patterns), ("tracking_code", tracking_patterns)):
        for pattern in configured:  # the user's regexes run on RE2: linear time whatever they say
            for start, end in finditer_user_pattern(pattern, text):
                hits.append(_Hit(kind, start, end, _id_value(text[start:end]), configured=True))
    for kind, builtin in (
        ("order_id", DEFAULT_ORDER_PATTERNS),
        ("tracking_code", DEFAULT_TRACKING_PATTERNS),
        ("invoice_id", DEFAULT_INVOICE_PATTERNS),
    ):
        for rx in _builtin(builtin):
            for m in rx.finditer(text):
                if m.end() > m.start():
                    hits.append(_Hit(kind, m.start(), m.end(), _id_value(m.group(0)), configured=True))
    for kind, rx in (("order_id", ORDER_CONTEXT), ("invoice_id", INVOICE_CONTEXT), ("tracking_code", TRACKING_CONTEXT)):
        for m in rx.finditer(text):
            token = m.group("id").rstrip("-")
            start = m.start("id")
            if sum(ch.isdigit() for ch in token) < 3:
                continue
            hits.append(_Hit(kind, start, start + len(token), _id_value(token)))
    for m in HASH_ID.finditer(text):
        before = text[max(0, m.start() - 40) : m.start()].lower()
        kind = "invoice_id" if re.search(r"\b(invoice|bill|receipt)s?\b\W*$", before) else "order_id"
        hits.append(_Hit(kind, m.start(), m.end(), m.group("id")))
    return hits


def _contacts(text: str) -> list[_Hit]:
    """Emails, card numbers (Luhn), IBANs (mod 97) and phone numbers."""
    hits: list[_Hit] = []
    for m in EMAIL.finditer(text):
        hits.append(_Hit("email", m.start(), m.end(), m.group(0).lower()))
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if luhn_valid(digits):
            masked = mask_card(digits)
            hits.append(_Hit("card_number", m.start(), m.end(), masked, shown=masked))
    for m in IBAN.finditer(text):
        if iban_valid(m.group(0)):
            hits.append(_Hit("iban", m.start(), m.end(), m.group(0).replace(" ", "")))
    for m in PHONE.finditer(text):
        raw = m.group(0)
        digits = re.sub(r"\D", "", raw.replace("(0)", ""))
        international = raw.startswith(("+", "00"))
        if international and not 8 <= len(digits) <= 15:
            continue
        if international and raw.startswith("00") and len(digits) < 11:
            continue
        if not international and not 9 <= len(digits) <= 11:
            continue
        value = "+" + digits[2:] if raw.startswith("00") else ("+" + digits if international else digits)
        hits.append(_Hit("phone", m.start(), m.end(), value))
    return hits


def _money(text: str) -> list[_Hit]:
    """Amounts with a currency symbol, ISO code or word, normalised to ``12.50 EUR``."""
    hits: list[_Hit] = []
    for m in MONEY.finditer(text):
        cur = m.group("pre") or m.group("post")
        amount = m.group("a1") or m.group("a2")
        code = _CURRENCY_SYMBOLS.get(cur) or _CURRENCY_WORDS.get(cur.lower()) or cur.upper()
        hits.append(_Hit("money", m.start(), m.end(), f"{normalise_amount(amount)} {code}"))
    return hits


def _dates(text: str, today: date) -> list[_Hit]:
    """Absolute and relative dates, normalised to ISO ``YYYY-MM-DD`` relative to ``today``."""
    hits: list[_Hit] = []

    def add(m: re.Match[str], d: date | None) -> None:
        if d is not None:
            hits.append(_Hit("date", m.start(), m.end(), d.isoformat()))

    for m in DATE_ISO.finditer(text):
        add(m, _safe_date(int(m.group("y")), int(m.group("m")), int(m.group("d"))))
    for m in DATE_NUMERIC.finditer(text):
        y = int(m.group("y"))
        y = y + 2000 if y < 100 else y
        add(m, _safe_date(y, int(m.group("m")), int(m.group("d"))))  # day first: European order
    for rx in (DATE_DAY_MONTH, DATE_MONTH_DAY):
        for m in rx.finditer(text):
            month = _MONTHS[m.group("month").lower().rstrip(".")]
            is_verb_may = m.group("month") == "may" and rx is DATE_MONTH_DAY and not m.group("year")
            if is_verb_may:  # "I may 2 ..." is the verb; "May 3" (capital M) is the month
                continue
            year = int(m.group("year")) if m.group("year") else today.year
            add(m, _safe_date(year, month, int(m.group("day"))))
    for m in DATE_RELATIVE.finditer(text):
        word = m.group(0).lower()
        offset = -2 if "before" in word else -1 if word == "yesterday" else 1 if word == "tomorrow" else 0
        add(m, today + timedelta(days=offset))
    for m in DATE_WEEKDAY.finditer(text):
        add(m, _weekday_date(m.group("rel"), _WEEKDAYS[m.group("wd").lower()], today))
    for m in DATE_AGO.finditer(text):
        n_raw = m.group("n").lower()
        n = _SMALL_NUMBERS.get(n_raw) or int(n_raw)
        days = n * (7 if m.group("unit").lower().startswith("week") else 1)
        add(m, today - timedelta(days=days))
    return hits


def _cards_win(hits: list[_Hit]) -> list[_Hit]:
    """Drop id hits that cover a card number, unless a company pattern matched exactly the card.

    A Luhn-valid 13-19 digit run after "order", "invoice" or "#" is far more often a card typed in
    the wrong place than a real id, and keeping it as an id would store and echo it unmasked.  A
    company whose order numbers really look like that says so with ``order_patterns``.
    """
    cards = sorted((h for h in hits if h.type == "card_number"), key=lambda c: c.start)
    if not cards:
        return hits
    card_ends = [c.end for c in cards]  # card matches never overlap: ends are sorted too
    out = []
    for h in hits:
        if _PRIORITY.get(h.type) == 0:
            overlapping = []
            for c in cards[bisect.bisect_right(card_ends, h.start) :]:
                if c.start >= h.end:
                    break
                overlapping.append(c)
            if overlapping and not (
                h.configured and all((c.start, c.end) == (h.start, h.end) for c in overlapping)
            ):
                continue
        out.append(h)
    return out


def _resolve(hits: list[_Hit]) -> list[_Hit]:
    """Keep non-overlapping hits: by type priority, then longer spans, then earlier ones.

    Kept spans never overlap, so they are held sorted by start (and therefore by end) and each
    candidate is checked against its two neighbours only: O(n log n) even for a flood of hits.
    """
    ordered = sorted(hits, key=lambda h: (_PRIORITY.get(h.type, 9), -(h.end - h.start), h.start))
    starts: list[int] = []
    kept: list[_Hit] = []
    for h in ordered:
        i = bisect.bisect_right(starts, h.start)
        if i > 0 and kept[i - 1].end > h.start:
            continue
        if i < len(kept) and kept[i].start < h.end:
            continue
        starts.insert(i, h.start)
        kept.insert(i, h)
    return kept


def extract_entities(
    text: str,
    *,
    order_patterns: Sequence[str] = (),
    tracking_patterns: Sequence[str] = (),
    now: datetime | None = None,
) -> list[Entity]:
    """All entities in ``text``, in order of appearance, non-overlapping.

    ``order_patterns`` / ``tracking_patterns`` are extra regexes for a company's formats (from
    ``[company]`` in config.toml), tried before the generic keyword rules.  ``now`` anchors relative
    dates ("yesterday", "last Friday"); default: the current local time.
    """
    if not text:
        return []
    today = (now or datetime.now()).date()
    hits = _ids(text, order_patterns, tracking_patterns) + _contacts(text) + _money(text) + _dates(text, today)
    hits = _cards_win(hits)
    return [
        Entity(type=h.type, text=h.shown if h.shown is not None else text[h.start : h.end], start=h.start,
               end=h.end, value=h.value)
        for h in _resolve(hits)
    ]

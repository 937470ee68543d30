"""Claim extraction: the checkable facts and promises a piece of text states, each with a comparable key.

Why a module of its own: finding claims is pure reading of one text and knows nothing about
evidence or who said what.  :mod:`csassist.core.reply.grounding` compares the claims of a draft
sentence with those of KB passages and the conversation; the hand-over summary
(:mod:`csassist.core.reply.summary`) uses the same reader to find the agent's promises.  One reader
for both means a promise the check would flag is also one the summary reports.

Claim kinds and their keys (the key is what two claims are compared by):

* ``amount`` — money with its currency in either order ("EUR 250", "250 €", "£5"): amount *and*
  currency;
* ``percentage`` and ``duration`` — a number or a range ("5-10 business days"), durations with
  their singular unit ("5-10 day");
* ``date`` — dates written with a digit, read against a fixed anchor (so "today" never matters);
  ``phone`` (last nine digits), ``email``, ``url`` (no scheme, no ``www.``), ``order_id``
  (order, tracking and invoice ids as their digits);
* ``placeholder`` — an unfilled template slot ("{{name}}", "[Order Number]");
* ``promise`` — a category (refund, replacement, discount, compensation, free shipping) or a
  ``commitment`` ("we will ..." with a verb that commits to more than the conversation itself).

Every regular expression here has bounded quantifiers, text is capped at :data:`MAX_CHARS` and
read in windows of :data:`WINDOW_CHARS`, so the work stays linear on untrusted text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from csassist.core.understand.entities import extract_entities

#: Longest draft / context text examined (characters); longer text is cut, never scanned whole.
MAX_CHARS = 20_000
#: A fixed anchor for relative dates: only absolute dates are compared, so "today" never matters.
_ANCHOR = datetime(2000, 1, 1)

# ------------------------------------------------------------------------------------ claim patterns
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\"']{1,300}", re.IGNORECASE)
_ORDER = re.compile(r"(?<![\w.$€£#-])(?:#\d{3,20}|[A-Z]{1,4}-?\d{4,20}|\d{5,20})(?![\w.]\w)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{\{[^{}]{1,40}\}\}|\[[A-Z][A-Za-z _-]{1,40}\]")
_NUM = r"\d{1,3}(?:[.,]\d{1,2})?"
_PERCENT = re.compile(
    rf"(?<![\d.,])(?P<a>{_NUM})(?:\s?%)?(?:\s{{0,2}}(?:-|–|to)\s{{0,2}}(?P<b>{_NUM}))?\s?(?:%|per\s?cent\b|percent\b)",
    re.IGNORECASE,
)
_WORD_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "thirty": 30,
}
_DUR_NUM = r"\d{1,4}|" + "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True))
_DURATION = re.compile(
    rf"\b(?P<a>{_DUR_NUM})(?:\s{{0,2}}(?:-|–|to)\s{{0,2}}(?P<b>\d{{1,4}}))?[\s-]{{1,2}}"
    r"(?:(?:business|working|calendar|bank)\s)?(?P<unit>hours?|days?|weeks?|months?|years?|minutes?)\b",
    re.IGNORECASE,
)
#: Promise categories: a mention commits the company, so a passage must mention the same category.
_PROMISES: dict[str, re.Pattern[str]] = {
    "refund": re.compile(
        r"\b(?:refund\w{0,3}|reimburs\w{0,6}|money back|pay (?:you )?back"
        r"|credited|(?:payment|money|amount|charge|price)s? (?:\S{1,20} ){0,3}(?:will|shall) be (?:returned|paid))\b",
        re.IGNORECASE,
    ),
    "replacement": re.compile(r"\b(?:replace(?:ment|ments|d)?|send (?:you )?(?:a )?new (?:one|item))\b", re.IGNORECASE),
    "discount": re.compile(
        r"\b(?:discount\w{0,3}|voucher\w{0,1}|coupon\w{0,1}|promo(?:tion(?:al)?)? codes?|\d{1,3} ?% off|"
        r"off your next)\b",
        re.IGNORECASE,
    ),
    "compensation": re.compile(
        r"\b(?:compensat\w{0,6}|goodwill|store credit|(?:a|an|some) (?:\w{1,15} ){0,2}credit|gift cards?)\b",
        re.IGNORECASE,
    ),
    "free shipping": re.compile(
        r"\b(?:free (?:shipping|delivery|returns?|collection|express|of charge)|waive\w{0,3})\b", re.IGNORECASE
    ),
}
#: "we will ..." / "I'll ..." commitments; the verb after it decides whether it is a promise.
_COMMITMENT = re.compile(
    r"\b(?:we|i|you)(?:'ll|’ll| will| shall| are going to| am going to)\s(?:\w{1,20}\s){0,2}?(?P<verb>\w{1,20})"
    r"|\b(?:guarantee\w{0,2}|promise\w{0,1})\b",
    re.IGNORECASE,
)
#: Verbs after "we will" that commit to nothing but the conversation itself (holding answers).
_SAFE_VERBS = frozenset(
    ["check", "checking", "look", "looking", "get", "be", "help", "let", "keep", "update", "follow", "investigate", "review", "reply", "respond", "contact", "pass", "forward", "escalate", "confirm", "see", "find", "try", "do", "ask", "need", "hear"]
)


@dataclass(frozen=True)
class RawClaim:
    """A claim as found in some text: its kind, the words as written, and a comparable key."""

    kind: str
    text: str
    key: str
    start: int
    end: int


# ------------------------------------------------------------------------------------- extraction
def norm_url(url: str) -> str:
    """A URL without scheme, ``www.``, trailing punctuation or slash, lower-cased."""
    url = url.rstrip(".,;:!?").lower()
    url = re.sub(r"^https?://", "", url)
    url = re.sub(r"^www\.", "", url)
    return url.rstrip("/")


def _num(raw: str) -> float:
    """A number written as digits (comma as decimal point allowed) or a small number word."""
    word = raw.lower()
    if word in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[word])
    return float(raw.replace(",", "."))


def _unit(raw: str) -> str:
    """Singular, lower-cased time unit."""
    return raw.lower().rstrip("s")


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start < b and end > a for a, b in spans)


#: Claims are looked for in windows of about this many characters (cut at a space), so the work per
#: window is bounded and the whole scan stays linear even for a 20 KB "sentence" with no full stop.
WINDOW_CHARS = 600
#: Each window also reads this many characters either side of its own stretch (cut at a space), so a
#: claim that straddles a cut ("EUR | 250") is read whole by the window where it starts.
WINDOW_MARGIN = 100


def _windows(text: str) -> list[tuple[int, int, int, str]]:
    """``text`` in consecutive stretches of at most :data:`WINDOW_CHARS` characters, cut at whitespace.

    Each item is ``(start, end, offset, window)``: the stretch ``text[start:end]`` and the text read
    for it, ``window = text[offset:...]``, which reaches :data:`WINDOW_MARGIN` further either side.
    """
    out: list[tuple[int, int, int, str]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + WINDOW_CHARS)
        if end < len(text):
            space = text.rfind(" ", start + WINDOW_CHARS // 2, end)
            end = space + 1 if space != -1 else end
        before = max(0, start - WINDOW_MARGIN)
        if before > 0:
            space = text.find(" ", before, start)
            before = space + 1 if space != -1 else start
        after = min(len(text), end + WINDOW_MARGIN)
        if after < len(text):
            space = text.rfind(" ", end, after)
            after = space if space != -1 else end
        out.append((start, end, before, text[before:after]))
        start = end
    return out


@lru_cache(maxsize=4096)
def extract_claims(text: str) -> tuple[RawClaim, ...]:
    """Every checkable claim in ``text`` (one sentence or a whole message), in order of appearance.

    A claim belongs to the window whose stretch it starts in, so none is lost at a cut or counted twice.
    """
    text = text[:MAX_CHARS]
    out: list[RawClaim] = []
    for start, end, offset, window in _windows(text):
        out.extend(
            RawClaim(c.kind, c.text, c.key, c.start + offset, c.end + offset)
            for c in _claims_in_window(window)
            if start <= c.start + offset < end
        )
    return tuple(out)


def _claims_in_window(text: str) -> list[RawClaim]:
    """The claims of one bounded window of text (see :func:`extract_claims`)."""
    found: list[RawClaim] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, start: int, end: int, key: str) -> None:
        found.append(RawClaim(kind, text[start:end].strip(), key, start, end))
        taken.append((start, end))

    for m in URL.finditer(text):
        add("url", m.start(), m.start() + len(m.group(0).rstrip(".,;:!?")), norm_url(m.group(0)))
    for m in _PLACEHOLDER.finditer(text):
        add("placeholder", m.start(), m.end(), m.group(0))
    for ent in extract_entities(text, now=_ANCHOR):
        if _overlaps(ent.start, ent.end, taken):
            continue
        if ent.type == "money":
            add("amount", ent.start, ent.end, ent.value)
        elif ent.type == "phone":
            add("phone", ent.start, ent.end, re.sub(r"\D", "", ent.value)[-9:])
        elif ent.type == "email":
            add("email", ent.start, ent.end, ent.value.lower())
        elif ent.type == "date" and re.search(r"\d", ent.text):
            add("date", ent.start, ent.end, ent.value)
        elif ent.type in ("order_id", "tracking_code", "invoice_id"):
            add("order_id", ent.start, ent.end, re.sub(r"\D", "", ent.value).lstrip("0"))
    for m in _PERCENT.finditer(text):
        if not _overlaps(m.start(), m.end(), taken):
            low = _num(m.group("a"))
            high = _num(m.group("b")) if m.group("b") else low
            add("percentage", m.start(), m.end(), f"{low:g}-{high:g}")
    for m in _DURATION.finditer(text):
        if not _overlaps(m.start(), m.end(), taken):
            low = _num(m.group("a"))
            high = _num(m.group("b")) if m.group("b") else low
            add("duration", m.start(), m.end(), f"{low:g}-{high:g} {_unit(m.group('unit'))}")
    for m in _ORDER.finditer(text):
        digits = re.sub(r"\D", "", m.group(0)).lstrip("0")
        if digits and not _overlaps(m.start(), m.end(), taken):
            add("order_id", m.start(), m.end(), digits)
    for category, pattern in _PROMISES.items():
        for m in pattern.finditer(text):
            if not _overlaps(m.start(), m.end(), taken):  # "refunds@shop.example" is an email, not a promise
                add("promise", m.start(), m.end(), category)
    for m in _COMMITMENT.finditer(text):
        verb = (m.group("verb") or "").lower()
        if verb and verb in _SAFE_VERBS:
            continue
        if not _overlaps(m.start(), m.end(), [(c.start, c.end) for c in found if c.kind == "promise"]):
            add("promise", m.start(), m.end(), "commitment")
    return sorted(found, key=lambda c: c.start)

"""Urgency flag: how soon a conversation needs a human, and the reasons, from transparent rules.

Why rules and not a sentiment model: the agent must see *why* a conversation jumped the queue
("legal threat: lawyer", "safety: sparks"), the signals are lexical and few, and the check runs on
every incoming message in microseconds.  Levels:

* ``urgent``: a safety hazard, a legal threat, a chargeback threat, or two or more elevated signals.
* ``elevated``: one of anger (all caps, ``!!!``, swearing, angry words), distress, a cancellation
  threat, or a repeated contact ("third time", or several unanswered customer messages in the history).
* ``normal``: none of these.

Children are an amplifier, not a signal: "a gift for my child" is normal, "the charger sparked near my
child" is urgent with both reasons listed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from csassist.core.types import Message, Urgency


def _words(*items: str) -> re.Pattern[str]:
    """A case-insensitive alternation of phrases with word boundaries."""
    return re.compile(r"\b(?:" + "|".join(items) + r")\b", re.IGNORECASE)


SWEARING = _words(
    r"f+u+c+k\w*", r"sh[i1]t\w*", r"crap\w*", r"damn\w*", r"bloody", r"wtf", r"bullsh\w*", r"piss(?:ed)?", r"bastards?",
    r"ass(?:holes?)?", r"hell",
)
ANGRY = _words(
    r"furious", r"angry", r"livid", r"outraged?", r"disgust(?:ed|ing)", r"unacceptable", r"ridiculous",
    r"appalling", r"pathetic", r"useless", r"incompetent", r"scam(?:mers?)?", r"rip[- ]?off", r"worst",
    r"fed up", r"sick (?:and tired )?of", r"terrible (?:service|company)", r"joke of a", r"shameful",
)
DISTRESS = _words(
    r"urgent(?:ly)?", r"asap", r"emergency", r"desperate(?:ly)?", r"panick?(?:ing|ed)?", r"crying",
    r"stressed", r"distraught", r"worried sick", r"can'?t afford", r"please,? help", r"help me,? please",
    r"at my wits'? end", r"need (?:it|this) (?:today|now|immediately)", r"immediately", r"right now",
)
CANCEL = _words(
    r"cancel(?:l?ing)? (?:my|the) (?:account|subscription|membership|contract)", r"close my account",
    r"delete my account", r"never (?:order|buy|shop)(?:ing)? (?:from you |here )?again",
    r"take my (?:business|money) elsewhere", r"switch(?:ing)? to (?:a )?(?:another|different|competitor)\w*",
    r"(?:i'?m|i am) (?:done|leaving)", r"last time i (?:order|buy|shop)",
)
CHARGEBACK = _words(
    r"charge ?backs?", r"dispute (?:the|this|a) (?:charge|payment|transaction)", r"(?:call|contact|ring|tell) my bank",
    r"(?:paypal|credit card|card) dispute", r"reverse the (?:charge|payment)", r"report (?:you|this) to my bank",
)
LEGAL = _words(
    r"lawyers?", r"attorneys?", r"solicitors?", r"sue", r"suing", r"lawsuit", r"court", r"legal action",
    r"ombudsman", r"small claims", r"trading standards", r"consumer (?:protection|rights|authority)",
    r"report (?:you|this) to the (?:authorities|police)", r"police",
)
SAFETY = _words(
    r"fire", r"caught fire", r"on fire", r"flames?", r"sparks?", r"sparked", r"sparking", r"burn(?:s|t|ed|ing)?",
    r"smoke", r"smoking", r"smoked", r"injur(?:y|ies|ed)", r"hurt", r"bleeding", r"electric(?:al)? shock",
    r"electrocuted", r"shocked me", r"overheat(?:s|ed|ing)?", r"melt(?:ed|ing)", r"explod(?:e|ed|ing)",
    r"chok(?:e|ed|ing)", r"swallowed", r"hospital", r"dangerous", r"unsafe", r"gas leak",
)
CHILD = _words(r"child(?:ren)?", r"kids?", r"baby", r"babies", r"toddlers?", r"son", r"daughter", r"infant")
REPEATED = _words(
    r"(?:second|third|fourth|fifth|2nd|3rd|4th|5th|\d+th) time", r"(?:several|many|multiple|countless|\d+) times",
    r"(?:again and again|over and over)", r"still (?:no|haven'?t had an?|not had an?) (?:answer|reply|response)",
    r"(?:nobody|no one|no-one) (?:has )?(?:replied|answered|responded|got back)",
    r"already (?:contacted|emailed|called|written|messaged|asked)", r"keep (?:being ignored|getting ignored)",
    r"(?:days|weeks) without (?:an? )?(?:answer|reply|response)", r"ignor(?:ed|ing) (?:me|my)",
)
EXCLAIM = re.compile(r"!{3,}|(?:!\s*\?|\?\s*!){2,}|[!?]{4,}")
#: Unanswered customer messages in a row (at the end of the history, counting this one) that flag it.
UNANSWERED_LIMIT = 3


def _caps_shouting(text: str) -> bool:
    """At least 3 all-caps words of 2+ letters in a row, or 60 %+ capitals over 12+ letters."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) >= 0.6:
        return True
    return re.search(r"\b[A-Z]{2,}\b(?:\W+\b[A-Z]{2,}\b){2,}", text) is not None


def _first(rx: re.Pattern[str], text: str) -> str | None:
    """The first phrase matched (lower-cased), or None."""
    m = rx.search(text)
    return m.group(0).lower() if m else None


#: (pattern, reason template) pairs, checked in this order; ``{}`` is the matched phrase.
_URGENT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (LEGAL, "legal threat: {}"),
    (CHARGEBACK, "chargeback threat: {}"),
)
_ELEVATED_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (SWEARING, "anger: swearing ({})"),
    (ANGRY, "anger: {}"),
    (DISTRESS, "distress: {}"),
    (CANCEL, "cancel threat: {}"),
)


def _phrase_reasons(text: str, rules: Sequence[tuple[re.Pattern[str], str]]) -> list[str]:
    """One reason per rule whose pattern matches, naming the first matched phrase."""
    reasons = []
    for pattern, template in rules:
        phrase = _first(pattern, text)
        if phrase:
            reasons.append(template.format(phrase))
    return reasons


def _unanswered(history: Sequence[Message]) -> int:
    """Customer messages since the last agent reply (the history is oldest first)."""
    n = 0
    for msg in reversed(history):
        if msg.speaker == "agent":
            break
        n += 1
    return n


def assess_urgency(text: str, history: Sequence[Message] = ()) -> Urgency:
    """Level and reasons for the latest customer message ``text`` given the earlier ``history``.

    ``history`` is oldest first and may or may not already contain ``text`` as its last message;
    when it does, it is not counted twice.
    """
    text = text or ""
    urgent: list[str] = []
    elevated: list[str] = []

    hazard = _first(SAFETY, text)
    if hazard:
        urgent.append(f"safety: {hazard}")
        child = _first(CHILD, text)
        if child:
            urgent.append(f"safety: {child} involved")
    urgent.extend(_phrase_reasons(text, _URGENT_RULES))

    if _caps_shouting(text):
        elevated.append("anger: shouting in capitals")
    if EXCLAIM.search(text):
        elevated.append("anger: repeated exclamation marks")
    elevated.extend(_phrase_reasons(text, _ELEVATED_RULES))
    repeated = _first(REPEATED, text)
    if repeated:
        elevated.append(f"repeated contact: {repeated}")
    else:
        earlier = list(history)
        if earlier and earlier[-1].speaker == "customer" and earlier[-1].text == text:
            earlier = earlier[:-1]
        unanswered = _unanswered(earlier) + 1
        if unanswered >= UNANSWERED_LIMIT:
            elevated.append(f"repeated contact: {unanswered} customer messages without a reply")

    anger = [r for r in elevated if r.startswith("anger")]
    # Several anger cues are one signal (an angry message), not several reasons to escalate.
    distinct = len(elevated) - max(0, len(anger) - 1)
    reasons = tuple(urgent + elevated)
    if urgent or distinct >= 2:
        return Urgency("urgent", reasons)
    if elevated:
        return Urgency("elevated", reasons)
    return Urgency("normal", ())

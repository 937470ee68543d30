"""The no-model suggestion: the best KB answer adapted to the conversation.

Why it exists: it is instant, needs no weights, can never invent a fact (every sentence comes from
the company's own KB), and is what the agent sees while a model is still loading or when none is
installed.  It is always slot 0 of the suggestions.

The reply is: a greeting (with the customer's name when known), an acknowledgement naming the order
number when one was found, the passage's key sentences (those sharing most words with the message,
kept in their original order), and a closing signed by the agent or the company.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from csassist.core.abbreviations import ends_with_abbreviation
from csassist.core.textmetrics import tokens
from csassist.core.types import Analysis, Passage
from csassist.core.understand.own_words import own_words
from csassist.settings import CompanySettings

#: At most this many sentences of the passage are kept.
MAX_SENTENCES = 4
#: ... and at most this many words of passage text.
MAX_WORDS = 90
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
#: Words that carry no topic: ignored when matching a passage sentence to a message or a draft.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "you",
        "we",
        "me",
        "my",
        "our",
        "your",
        "to",
        "of",
        "and",
        "or",
        "in",
        "on",
        "for",
        "is",
        "are",
        "was",
        "be",
        "it",
        "this",
        "that",
        "with",
        "at",
        "by",
        "from",
        "can",
        "could",
        "would",
        "will",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "not",
        "no",
        "please",
        "hi",
        "hello",
        "thanks",
        "thank",
    ]
)
_ORDER_TYPES = ("order_id", "order_number", "order")


def _clean_lines(text: str) -> list[str]:
    """Passage text without Markdown headings, list markers, emphasis or front matter fences."""
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line in ("---", "***"):
            continue
        line = re.sub(r"^(?:[-*+]|\d+[.)])\s+", "", line)
        line = re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", line)
        line = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", line)
        line = line.rstrip(";, ")
        if line and line[-1] not in ".!?:":
            line += "."
        out.append(line)
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a (Markdown) passage, in order."""
    sentences: list[str] = []
    for line in _clean_lines(text):
        pieces = [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
        merged: list[str] = []
        for piece in pieces:
            if merged and ends_with_abbreviation(merged[-1], piece):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        sentences.extend(merged)
    return sentences


def key_sentences(
    passage_text: str, message: str, *, max_sentences: int = MAX_SENTENCES, max_words: int = MAX_WORDS
) -> list[str]:
    """The passage's sentences most related to ``message``, in passage order, within the size limits.

    The limits default to the extractive reply's; the prompt builder passes tighter ones for the
    passages after the best one (every prompt token is prefill time on CPU).

    Score = content words shared with the message, plus a small bonus for coming early (KB answers
    usually lead with the answer).  List intros (ending in ":") and lower-case list fragments are not
    picked: on their own they read as broken sentences.
    """
    sentences = split_sentences(passage_text)
    if not sentences:
        return []
    wanted = {t for t in tokens(message) if t not in STOPWORDS}
    scored = []
    for i, s in enumerate(sentences):
        if s.endswith(":") or s[0].islower():
            continue  # a list intro without its list, or a list fragment, reads badly on its own
        overlap = len(wanted & set(tokens(s)))
        scored.append((overlap + 1.0 / (1 + i), i))
    if not scored:
        scored = [(0.0, 0)]
    chosen: set[int] = set()
    words = 0
    for _, i in sorted(scored, reverse=True):
        n = len(sentences[i].split())
        if chosen and (len(chosen) >= max_sentences or words + n > max_words):
            continue
        chosen.add(i)
        words += n
    return [sentences[i] for i in sorted(chosen)]


def _order_number(analysis: Analysis | None) -> str | None:
    """The order number found in the message, if the analyzer saw one."""
    if analysis is None:
        return None
    for ent in analysis.entities:
        if ent.type in _ORDER_TYPES:
            return ent.value or ent.text
    return None


#: Below this cosine a passage shares words with the message but does not answer it (measured on the
#: demo: "thank you so much!" retrieves a stock article at 0.20; real matches score 0.45-0.70).
MIN_GROUNDING_SCORE = 0.30


def choose_passage(passages: Sequence[Passage], analysis: Analysis | None) -> Passage:
    """The passage to answer from: the best-ranked one tagged with the detected intent, else the best one.

    Retrieval ranks by similarity of wording; the intent model looks at what the customer wants.  When
    they disagree (tracking vs. "my parcel never came"), the article written for that intent wins,
    but only among the retrieved candidates.
    """
    intent = analysis.intent.intent if analysis is not None else None
    if intent:
        for p in passages[:3]:
            if intent in p.intents:
                return p
    return passages[0]


def _first_name(name: str | None) -> str | None:
    """A greeting-friendly first name ("Dana" from "Dana Whitfield"), or None."""
    if not name or not name.strip():
        return None
    first = name.strip().split()[0]
    return first if re.fullmatch(r"[^\W\d_][\w'-]*", first) else None


def extractive_reply(
    message: str,
    passages: Sequence[Passage],
    analysis: Analysis | None,
    company: CompanySettings,
    *,
    customer_name: str | None = None,
) -> tuple[str, tuple[str, ...]]:
    """Build the extractive reply and return ``(text, source_article_ids)``.

    With no passage scoring at least :data:`MIN_GROUNDING_SCORE` the reply is an honest holding answer
    (we will check and come back) with no sources, so slot 0 always has something sendable and never
    pastes an article that merely shares a few words with the message.
    """
    first = _first_name(customer_name)
    greeting = f"Hi {first}," if first else "Hello,"
    order = _order_number(analysis)
    parts = [greeting]
    if order:
        parts.append(f"thank you for getting in touch about order {order}.")
    else:
        parts.append("thank you for getting in touch.")
    opening = " ".join(parts)
    signer = company.agent_name.strip() or f"the {company.name} team"
    closing = f"If there is anything else I can do, just reply here.\n\nBest regards,\n{signer}"
    passages = [p for p in passages if p.score >= MIN_GROUNDING_SCORE]
    if not passages:  # nothing relevant: an honest holding answer beats pasting an unrelated article
        body = "I am looking into this for you and will get back to you shortly with an answer."
        return f"{opening}\n\n{body}\n\n{closing}", ()
    best = choose_passage(passages, analysis)
    sentences = key_sentences(best.text, own_words(message))  # not the words of a quoted earlier reply
    body = " ".join(sentences) if sentences else best.text.strip()
    return f"{opening}\n\n{body}\n\n{closing}", (best.article_id,)

"""Full stops that do not end a sentence: one rule for the reply side's sentence splitters.

Why one module: a passage's sentences for the extractive reply (:mod:`csassist.core.reply.extractive`)
and a draft's sentence spans for grounding (:mod:`csassist.core.reply.grounding`) had two
abbreviation lists, and a plain suffix test read "piano." as "no." and "first." as "st.".  The KB's
sentence index (:mod:`csassist.core.knowledge.sentences`) does not use it: merging its sentences at
abbreviations was measured to cost retrieval (that module says by how much).
"""

from __future__ import annotations

import re

#: Abbreviations whose full stop never ends a sentence, lower case.
ABBREVIATIONS = (
    "e.g.", "i.e.", "etc.", "approx.", "vs.", "incl.", "excl.", "min.", "max.", "ca.",
    "mr.", "mrs.", "ms.", "dr.", "st.", "co.", "inc.", "ltd.", "dept.",
)
#: Abbreviations that do so only before a number ("No. 5", "Tel. 020 ..."): "No." alone is an answer.
NUMBER_ABBREVIATIONS = ("no.", "nr.", "tel.")

_WORD_BEFORE = r"(?:^|(?<=[^\w.]))"
_ALWAYS = re.compile(_WORD_BEFORE + "(?:" + "|".join(re.escape(a) for a in ABBREVIATIONS) + r")$")
_BEFORE_NUMBER = re.compile(_WORD_BEFORE + "(?:" + "|".join(re.escape(a) for a in NUMBER_ABBREVIATIONS) + r")$")


def ends_with_abbreviation(left: str, following: str = "") -> bool:
    """Whether ``left``'s final full stop belongs to an abbreviation, so the sentence goes on.

    ``following`` is the text after the full stop (only its first character is looked at): it decides
    the abbreviations of :data:`NUMBER_ABBREVIATIONS`.  The abbreviation must be a whole word, so
    "piano." and "first." end their sentences.
    """
    tail = left.rstrip().lower()[-12:]
    if _ALWAYS.search(tail):
        return True
    return bool(_BEFORE_NUMBER.search(tail)) and following.lstrip()[:1].isdigit()

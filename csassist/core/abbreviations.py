"""Full stops that do not end a sentence: one rule for every sentence splitter in csassist.

Why one module: three splitters cut text into sentences for different jobs -- the KB's and a long
message's sentences for embedding and evidence (:mod:`csassist.core.knowledge.sentences`), a passage's
sentences for the extractive reply (:mod:`csassist.core.reply.extractive`) and a draft's sentence
spans for grounding (:mod:`csassist.core.reply.grounding`).  They had two abbreviation lists and one
had none, so the KB's "Include your order number (e.g." became a sentence of its own (44 of the demo
KB's sentences were cut like that, "Larkspur & Co." most often), and a plain suffix test read
"piano." as "no." and "first." as "st.".
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

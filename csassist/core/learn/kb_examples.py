"""The KB's own phrasings as extra intent-training examples.

Why: ``intents.csv`` holds short, direct requests, while customers write indirectly and at length.
Every article already carries the questions it answers (front matter ``questions:``, a FAQ row's
``question``) and a title, and says which intent it serves (``intents:``, a FAQ row's ``intent``).
When an article serves exactly one intent, those phrasings are free, correctly labelled examples of
that intent written by whoever wrote the KB; :func:`with_kb_phrasings` adds them to the labelled
examples before ``csassist index`` fits the intent head and the out-of-scope detector.  Articles that
serve several intents are left out: their questions would teach the head that one wording belongs to
several classes.  The held-out dev set (``kb/eval``) is never an article, so it is never read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from csassist.core.types import Article, IntentExample
from csassist.core.understand.intent_data import OOS_LABEL


def kb_phrasing_examples(articles: Iterable[Article]) -> list[IntentExample]:
    """Title and questions of every article that names exactly one (in-scope) intent, labelled with it."""
    out: list[IntentExample] = []
    for article in articles:
        intents = [i.strip() for i in article.intents if i.strip()]
        if len(intents) != 1 or intents[0] == OOS_LABEL:
            continue
        for text in (article.title, *article.questions):
            if text.strip():
                out.append(IntentExample(text=text.strip(), intent=intents[0]))
    return out


def with_kb_phrasings(examples: Sequence[IntentExample], articles: Iterable[Article]) -> list[IntentExample]:
    """``examples`` followed by the KB's phrasings, skipping a text (case-insensitive) already present.

    The labelled examples come first and win: a phrasing whose text is already an example (under any
    intent, including ``oos``) is not added again, so the KB can never relabel an agent's example.
    """
    seen = {e.text.strip().casefold() for e in examples}
    out = list(examples)
    for example in kb_phrasing_examples(articles):
        key = example.text.casefold()
        if key not in seen:
            seen.add(key)
            out.append(example)
    return out


def intent_training_examples(kb_dir: Path, *, max_file_bytes: int | None = None) -> list[IntentExample]:
    """What ``csassist index`` fits the intent head on: the KB's ``intents.csv`` plus its phrasings.

    ``csassist finetune --intents KB_DIR`` trains on exactly this, so a fine-tuned model and the index
    head it replaces learned from the same rows.  Raises :class:`~csassist.core.errors.DataError` when
    the KB has no labelled examples (the phrasings alone carry no ``oos`` rows nor agents' wording).
    """
    from csassist.core.errors import DataError
    from csassist.core.knowledge.kb import DEFAULT_MAX_KB_FILE_BYTES, load_kb

    kb = load_kb(Path(kb_dir), max_file_bytes=max_file_bytes or DEFAULT_MAX_KB_FILE_BYTES)
    if not kb.intent_examples:
        raise DataError(f"{kb_dir}: the knowledge base has no intents.csv / intents.jsonl examples")
    return with_kb_phrasings(kb.intent_examples, kb.articles)

"""What ``csassist index`` fits for intents: the head and, beside it, the lexical vote on its ranking.

Kept apart from :mod:`csassist.core.learn.intent_head` (the head alone, also used by the BANKING77
benchmark and the learning loop's refit) so that the head's module does not depend on the lexical
vote's, and the vote's fitting may reuse the head's vectors: one encoder pass over the rows serves both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.atomic import atomic_directory
from csassist.core.knowledge.embedder import Encoder
from csassist.core.knowledge.encode_cache import MemoEncoder
from csassist.core.learn.intent_head import DEFAULT_C, fit_head
from csassist.core.learn.lexical_fit import fit_lexical_vote
from csassist.core.types import IntentExample
from csassist.core.understand.intent import clean_text
from csassist.core.understand.intent_format import write_model


def fit_index_intents(
    examples: Sequence[IntentExample], encoder: Encoder, out_dir: Path, seed: int = 13, *, c: float = DEFAULT_C
) -> dict[str, Any]:
    """Fit the index head and its lexical vote, save both atomically into ``out_dir`` (``<index>/intent``).

    Returns the head's report with the vote's under ``"lexical"``.  A vote that does not help in
    cross-validation is not saved (the ranking is then the head's and the KB's alone).
    """
    memo = MemoEncoder(encoder, capacity=len(examples) + 1)
    model = fit_head(examples, memo, seed, c=c)
    index = {label: i for i, label in enumerate(model.labels)}
    rows = [(text, e.intent.strip()) for text, e in ((clean_text(e.text), e) for e in examples)
            if text and e.intent.strip() in index]
    texts = [text for text, _ in rows]
    y = np.array([index[label] for _, label in rows], dtype=np.int64)
    vectors = np.asarray(memo.encode(texts), dtype=np.float32)  # answered from the memo: no second pass
    vote, lexical_report = fit_lexical_vote(texts, vectors, y, model.labels, seed)
    model = dataclasses.replace(model, encoder=encoder, report={**model.report, "lexical": lexical_report,
                                                                     "lexical_weight": float(lexical_report.get("weight", 0.0))})
    with atomic_directory(Path(out_dir)) as tmp:
        write_model(model, tmp)
        if vote is not None:
            vote.save(tmp)
    return dict(model.report)

"""How hybrid retrieval combines its signals: reciprocal-rank fusion, intent boost, one hit per article.

Pure functions over ranks and scores, kept apart from the index code so each rule is tested on its
own and the benchmark can switch each one off (:class:`RetrievalOptions`) to measure what it adds.

* **Reciprocal-rank fusion** (Cormack et al., 2009): every ranked list votes ``w / (k + rank)`` for
  each chunk.  Ranks, not raw scores, because a BM25 score and a cosine live on unrelated scales and
  BM25's scale changes with the query's length.
* **Intent boost**: an article whose front matter names the intents the classifier predicts gets
  ``boost * p(intent)`` first-place votes.  The classifier was trained on customer phrasing, so it
  often knows the topic when the words of the message match the wrong article.
* **Grouping**: the agent sees articles, not chunks; an article is as good as its best chunk and is
  listed once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RetrievalOptions:
    """Which signals a search uses; the defaults are what measured best on the dev set."""

    lexical: bool = True  # word BM25
    chars: bool = False  # character n-gram BM25: off, it measured no gain on the dev set and one shared
    # trigram ("back" / "packed") gets a full rank vote; kept in the index for the benchmark and for KBs it helps
    intent_boost: float = 1.0  # first-place votes given to an article of a predicted intent (0 = off)
    per_sentence: bool = True  # long messages: each sentence also searched on its own
    rrf_k: int = 60  # the usual RRF constant: dampens the difference between ranks 1 and 2
    candidates: int = 50  # how deep each ranked list is read
    sentence_weight: float = 0.5  # the weight of each sentence's lists relative to the whole message's
    lexical_weight: float = 1.0
    chars_weight: float = 0.5
    kb_sentences: float = 1.0  # weight of the ranking by the chunk's best-matching sentence (0 = off)
    spelling: bool = True  # misspelled words corrected towards the KB's words first (knowledge.spelling)


#: The engine before hybrid retrieval (7a33194): embeddings only, no boosts, no sentence scoring.
DENSE_ONLY = RetrievalOptions(
    lexical=False, chars=False, intent_boost=0.0, per_sentence=False, kb_sentences=0.0, spelling=False
)

#: A message longer than this with two or more sentences is also searched sentence by sentence.
LONG_MESSAGE_CHARS = 140


def ranked(scores: np.ndarray, depth: int, *, positive_only: bool = False) -> list[int]:
    """Indices of the ``depth`` highest scores, best first (zero scores dropped when ``positive_only``)."""
    if scores.size == 0 or depth <= 0:
        return []
    depth = min(depth, scores.size)
    part = np.argpartition(-scores, depth - 1)[:depth]
    order = part[np.argsort(-scores[part], kind="stable")]
    if positive_only:
        order = order[scores[order] > 0]
    return [int(i) for i in order]


def reciprocal_rank_fusion(lists: Sequence[tuple[Sequence[int], float]], k: int) -> dict[int, float]:
    """Sum of ``weight / (k + rank)`` over every ``(ranking, weight)`` list (ranks start at 1)."""
    fused: dict[int, float] = {}
    for ranking, weight in lists:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def intent_bonus(article_intents: Sequence[str], distribution: Mapping[str, float], boost: float, k: int) -> float:
    """``boost`` first-place votes times the predicted probability of the article's best intent."""
    if boost <= 0 or not distribution or not article_intents:
        return 0.0
    p = max((distribution.get(intent, 0.0) for intent in article_intents), default=0.0)
    return boost * p / (k + 1)


def group_by_article(fused: Mapping[int, float], article_of: Sequence[str]) -> list[tuple[str, int, float]]:
    """``(article_id, best_chunk, score)`` per article, best first; an article scores as its best chunk."""
    best: dict[str, tuple[int, float]] = {}
    for chunk, score in fused.items():
        article = article_of[chunk]
        if article not in best or score > best[article][1]:
            best[article] = (chunk, score)
    return sorted(((a, c, s) for a, (c, s) in best.items()), key=lambda t: (-t[2], t[1]))

"""Reply-quality metrics shared by the benchmarks and the learning loop's before/after evaluation.

Implemented here (a few lines, no extra dependency) so that every report in the project computes
ROUGE-L and embedding similarity exactly the same way.

* :func:`rouge_l` — the F-measure of the longest common subsequence of word tokens (Lin, 2004),
  with beta = 1 (plain F1), lower-cased, punctuation dropped.  Same definition as the ``rougeL``
  score of Google's ``rouge-score`` package without stemming.
* :func:`embedding_cosine` — cosine between sentence embeddings of each prediction and its
  reference: rewards a paraphrase that ROUGE would miss.
* :func:`token_jaccard` — word-set overlap, used to drop near-duplicate suggestions.

It sits at the top of ``csassist.core``, beside :mod:`csassist.core.textnorm`, rather than in
``core.learn``: ``core.reply`` tokenizes with :func:`tokens` (extractive selection, grounding) and
de-duplicates drafts with :func:`token_jaccard`, and ``core.learn`` already depends on ``core.reply``,
so a home in either stage package would make an import cycle between the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.knowledge.embedder import Encoder

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, keeping simple contractions) used by every metric here."""
    return _TOKEN.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    if len(b) > len(a):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            current[j] = previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1])
        previous = current
    return previous[-1]


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1 between a predicted and a reference text, in [0, 1] (0 when either is empty)."""
    p, r = tokens(pred), tokens(ref)
    lcs = lcs_length(p, r)
    if lcs == 0:
        return 0.0
    precision = lcs / len(p)
    recall = lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def embedding_cosine(preds: Sequence[str], refs: Sequence[str], encoder: Encoder) -> list[float]:
    """Cosine similarity of each prediction to its reference under ``encoder`` (one value per pair).

    The encoder returns unit-norm rows, so the cosine is the row-wise dot product; an empty
    prediction scores 0.0 rather than whatever the encoder makes of an empty string.
    """
    if len(preds) != len(refs):
        raise ValueError(f"embedding_cosine: {len(preds)} predictions but {len(refs)} references")
    if not preds:
        return []
    a = encoder.encode(list(preds))
    b = encoder.encode(list(refs))
    sims = np.sum(a * b, axis=1)
    return [0.0 if not p.strip() else float(s) for p, s in zip(preds, sims, strict=True)]


def token_jaccard(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' word sets (1.0 for two empty texts)."""
    sa, sb = set(tokens(a)), set(tokens(b))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)

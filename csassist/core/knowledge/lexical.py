"""Lexical (BM25) search over the KB chunks, the exact-word half of hybrid retrieval.

Why BM25 next to the embeddings: MiniLM places "I was charged twice" close to any money article, while
the words "charged twice" occur in exactly one; customers also write rare literal words (Klarna,
Packstation, VAT) that a small embedder blurs.  Two BM25 views are kept:

* ``word`` -- lower-cased words without stop words, lightly stemmed (plural/-ing/-ed stripped);
* ``char`` -- character 3- and 4-grams of those words, which still match when a customer types
  "refnud" or "cancell" (built, but not used by default: on the dev set it gained nothing and a
  single shared trigram earns a full rank vote -- see ``RetrievalOptions.chars``).

Both are built with `bm25s <https://github.com/xhluca/bm25s>`_ (a maintained, numpy-only BM25) at
index time and saved in ``<index>/lexical/`` beside the FAISS file, so the swap of the index directory
keeps them consistent; the manifest records how many documents they hold and the tokenizer version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.errors import IndexUnusableError

LEXICAL_SUBDIR = "lexical"
#: Bumped whenever the tokenisation changes: an index written by another tokenizer must be rebuilt.
TOKENIZER_VERSION = "words-stem1+char34-v1"
VIEWS = ("word", "char")

_WORD = re.compile(r"[a-z0-9]+")
#: Short English function words: frequent in every chunk, so they only add noise to BM25.
STOPWORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "hi", "hello", "hey", "please", "thanks", "thank", "s", "t", "d", "ll", "m", "re", "ve", "im", "dont", "didnt", "cant", "wont", "isnt", "hasnt", "havent", "doesnt", "ive", "youre"]
)


def stem(word: str) -> str:
    """A deliberately light suffix stripper: plurals, -ing and -ed (enough to join "refunds"/"refunded")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        return word[:-1]  # "charge"/"charged" -> "charg"
    return word


def word_tokens(text: str) -> list[str]:
    """Content words of ``text``: lower-cased, apostrophes dropped, stop words removed, stemmed."""
    words = _WORD.findall((text or "").lower().replace("'", "").replace("\u2019", ""))
    return [stem(w) for w in words if w not in STOPWORDS]


def char_tokens(text: str) -> list[str]:
    """Character 3- and 4-grams of each content word (with boundary marks), for typo-tolerant matching."""
    out: list[str] = []
    for word in _WORD.findall((text or "").lower().replace("'", "").replace("\u2019", "")):
        if word in STOPWORDS or len(word) < 3:
            continue
        padded = f"#{word}#"
        for n in (3, 4):
            out.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


_TOKENIZERS = {"word": word_tokens, "char": char_tokens}


class LexicalIndex:
    """BM25 over the chunks in index order, one model per view; ``scores`` gives every chunk's score."""

    def __init__(self, models: dict[str, Any], documents: int) -> None:
        self.models = models
        self.documents = documents

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        """Tokenise and index ``texts`` (one per chunk, same order as the FAISS vectors)."""
        import bm25s

        models: dict[str, Any] = {}
        for view in VIEWS:
            corpus = [_TOKENIZERS[view](t) or ["_"] for t in texts]
            model = bm25s.BM25()
            model.index(corpus, show_progress=False)
            models[view] = model
        return cls(models, len(texts))

    def save(self, directory: Path) -> dict[str, Any]:
        """Write every view under ``directory``; return the manifest entry describing them."""
        directory.mkdir(parents=True, exist_ok=True)
        for view, model in self.models.items():
            model.save(str(directory / view), show_progress=False)
        info = {"tokenizer": TOKENIZER_VERSION, "views": list(self.models), "documents": self.documents}
        (directory / "lexical.json").write_text(json.dumps(info), encoding="utf-8")
        return info

    @classmethod
    def load(cls, directory: Path, expected: dict[str, Any], documents: int) -> LexicalIndex:
        """Load and check against the manifest entry ``expected`` and the chunk count; refuse mismatches."""
        import bm25s

        advice = "re-index with `csassist index KB --rebuild`"
        if expected.get("tokenizer") != TOKENIZER_VERSION:
            raise IndexUnusableError(
                f"lexical index at {directory} uses tokenizer {expected.get('tokenizer')!r}, "
                f"this csassist uses {TOKENIZER_VERSION!r}: {advice}"
            )
        if expected.get("documents") != documents:
            raise IndexUnusableError(f"lexical index at {directory} does not match the chunks: {advice}")
        models: dict[str, Any] = {}
        try:
            for view in VIEWS:
                models[view] = bm25s.BM25.load(str(directory / view), show_progress=False)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise IndexUnusableError(f"lexical index at {directory} is unreadable ({exc}): {advice}") from exc
        for view, model in models.items():
            if int(model.scores["num_docs"]) != documents:
                raise IndexUnusableError(f"lexical index view {view!r} at {directory} is inconsistent: {advice}")
        return cls(models, documents)

    def scores(self, query: str, view: str = "word") -> np.ndarray:
        """BM25 score of every chunk for ``query`` under ``view`` (zeros when no query word is known)."""
        tokens = _TOKENIZERS[view](query)
        model = self.models[view]
        known = [t for t in tokens if t in model.vocab_dict]
        if not known:
            return np.zeros(self.documents, dtype=np.float32)
        return np.asarray(model.get_scores(known), dtype=np.float32)

"""Search a built index: hybrid dense + BM25 retrieval, fused by rank, one result per article.

The query is embedded by the same model that built the index; FAISS gives the nearest chunks, BM25
(:mod:`~csassist.core.knowledge.lexical`) the chunks sharing its rare words and letter groups, and
:mod:`~csassist.core.knowledge.fusion` merges them (plus the predicted intent and, for long messages,
each sentence on its own).  Every hit carries its dense cosine as ``score`` (what thresholds such as
the extractive reply's grounding floor are calibrated on) and the sentence of the chunk closest to
the query as ``evidence``.  A cross-encoder reranker would be the next step, but none with
bundled weights is installable offline (see the README): the fusion is the reranker.

:meth:`Retriever.open` checks the manifest against what it is about to use (format version, embedder,
dimension, files present and consistent) and refuses with advice to re-index on any mismatch: a
vector from another model lives in another space, and searching it would return confident nonsense.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from csassist.core.errors import IndexUnusableError
from csassist.core.knowledge.embedder import DEFAULT_EMBEDDER, Encoder, load_encoder
from csassist.core.knowledge.fusion import (
    LONG_MESSAGE_CHARS,
    RetrievalOptions,
    group_by_article,
    intent_bonus,
    ranked,
    reciprocal_rank_fusion,
)
from csassist.core.knowledge.index import (
    CHUNKS_FILE,
    FORMAT_VERSION,
    HNSW_EF_SEARCH,
    INDEX_FILE,
    IVF_NPROBE,
    SENTENCE_VECTORS_FILE,
    SENTENCES_FILE,
    VECTORS_FILE,
    configure_faiss_threads,
    read_chunk_records,
    read_manifest,
    read_sentence_records,
)
from csassist.core.knowledge.late_chunking import pool_spans
from csassist.core.knowledge.lexical import LEXICAL_SUBDIR, LexicalIndex
from csassist.core.knowledge.sentences import locate_sentences, split_sentences
from csassist.core.knowledge.spelling import SpellingNormaliser
from csassist.core.types import Passage

_REINDEX = "re-index with `csassist index KB --rebuild`"
#: Longest query text (characters) encoded: the encoder truncates at 256 tokens anyway.
MAX_QUERY_CHARS = 2000
#: At most this many sentences of a long message are searched on their own (each costs an encoding).
MAX_QUERY_SENTENCES = 4
#: Pool a long message's sentence vectors from its one encoder pass instead of encoding them again
#: (:mod:`~csassist.core.knowledge.late_chunking`; query side only, the index is unchanged).  Off: on
#: the dev set it saved ~45 ms per long message but cost, net, one hit@1, one hit@3 and one top-3
#: intent out of 204.  The app reads long messages sentence by sentence instead
#: (:mod:`~csassist.core.knowledge.message_vectors`), whose sentence vectors are exact and free.
LATE_CHUNKING = False
#: Recent queries whose fused ranking is remembered (the KB vote and the KB panel search each message).
FUSED_MEMO = 32

IntentDistribution = Mapping[str, float]


class PassageSearch(Protocol):
    """What the turn pipeline needs of an index: ``search(query, k, intents=...)``, nothing else.

    Why a protocol: :class:`csassist.core.pipeline.Assistant` calls only this, so its tests drive it
    with a few-line fake instead of a built index, and mypy checks that fake against this signature
    (``query`` and ``k`` are passed positionally).  :class:`Retriever` is the real one.
    """

    def search(self, query: str, k: int, /, *, intents: IntentDistribution | None = None) -> list[Passage]:
        """The ``k`` best passages for ``query``, best first; ``intents`` boosts articles written for them."""
        ...


class Retriever:
    """A loaded index plus its encoder; ``search`` is thread-safe (read-only arrays, a locked encoder)."""

    def __init__(
        self,
        index_dir: Path,
        manifest: dict[str, Any],
        index: Any,
        records: list[dict[str, Any]],
        encoder: Encoder,
        *,
        vectors: np.ndarray | None = None,
        lexical: LexicalIndex | None = None,
        sentences: tuple[list[dict[str, Any]], np.ndarray] | None = None,
        options: RetrievalOptions | None = None,
        late_chunking: bool | None = None,
    ) -> None:
        self.index_dir = index_dir
        #: Pool long messages' sentence vectors from their one encoder pass (None: :data:`LATE_CHUNKING`).
        self.late_chunking = LATE_CHUNKING if late_chunking is None else late_chunking
        self._fused_memo: OrderedDict[tuple[str, RetrievalOptions, bool], dict[int, float]] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.manifest = manifest
        self.encoder = encoder
        self.options = options or RetrievalOptions()
        self.lexical = lexical
        self._index = index
        self._records = records
        self._vectors = vectors
        self._passages = [
            Passage(
                chunk_id=str(r["chunk_id"]),
                article_id=str(r["article_id"]),
                title=str(r.get("title", "")),
                text=str(r.get("text", "")),
                source=str(r.get("source", "")),
                score=0.0,
                intents=tuple(r.get("intents", ())),
            )
            for r in records
        ]
        self._article_of = [p.article_id for p in self._passages]
        #: Typo repair towards the words of these articles (what the models read; built on first use).
        self.spelling = SpellingNormaliser.from_texts(f"{p.title}\n{p.text}" for p in self._passages)
        self._sentence_texts: list[str] = []
        self._sentence_vectors = np.zeros((0, encoder.dimension), dtype=np.float32)
        self._sentences_of: dict[int, list[int]] = {}
        if sentences is not None:
            sentence_records, sentence_vectors = sentences
            self._sentence_texts = [str(r.get("text", "")) for r in sentence_records]
            self._sentence_vectors = sentence_vectors
            for i, r in enumerate(sentence_records):
                self._sentences_of.setdefault(int(r.get("row", -1)), []).append(i)
        self._sentence_rows = np.zeros(0, dtype=np.int64)
        if sentences is not None:
            self._sentence_rows = np.array([int(r.get("row", 0)) for r in sentences[0]], dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of indexed chunks."""
        return len(self._records)

    @property
    def hybrid(self) -> bool:
        """Whether the index carries the BM25 views (indexes built before them are dense only)."""
        return self.lexical is not None

    @classmethod
    def open(cls, index_dir: Path, encoder: Encoder | None = None, options: RetrievalOptions | None = None,
             *, late_chunking: bool | None = None) -> Retriever:
        """Load and validate an index; ``encoder=None`` loads the embedder named in the manifest.

        ``late_chunking`` (None: :data:`LATE_CHUNKING`) pools long queries' sentence vectors from their
        one encoder pass instead of encoding them again.
        """
        import faiss

        index_dir = Path(index_dir).expanduser()
        if not (index_dir / "manifest.json").exists():
            raise IndexUnusableError(f"no index at {index_dir}: run `csassist index kb/`")
        manifest = read_manifest(index_dir)
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexUnusableError(
                f"index at {index_dir} has format version {version}; this csassist reads version {FORMAT_VERSION}: {_REINDEX}"
            )
        embedder = manifest.get("embedder") or {}
        model_id, dimension = embedder.get("model_id"), embedder.get("dimension")
        if not isinstance(model_id, str) or not isinstance(dimension, int):
            raise IndexUnusableError(f"index manifest at {index_dir} does not name its embedder: {_REINDEX}")
        if encoder is None:
            encoder = load_encoder() if model_id == DEFAULT_EMBEDDER else load_encoder(model_id)
        if encoder.model_id != model_id:
            raise IndexUnusableError(
                f"index at {index_dir} was built with embedder {model_id!r} but {encoder.model_id!r} is in use: {_REINDEX}"
            )
        if encoder.dimension != dimension:
            raise IndexUnusableError(
                f"index at {index_dir} holds {dimension}-d vectors but the embedder makes "
                f"{encoder.dimension}-d ones: {_REINDEX}"
            )
        missing = [name for name in (INDEX_FILE, CHUNKS_FILE) if not (index_dir / name).exists()]
        if missing:
            raise IndexUnusableError(f"index at {index_dir} is incomplete (missing {', '.join(missing)}): {_REINDEX}")
        configure_faiss_threads()
        try:
            index = faiss.read_index(str(index_dir / INDEX_FILE))
            records = read_chunk_records(index_dir)
        except (RuntimeError, OSError, ValueError, json.JSONDecodeError, KeyError) as exc:
            raise IndexUnusableError(f"index at {index_dir} is unreadable ({exc}): {_REINDEX}") from exc
        if index.d != dimension or index.ntotal != len(records):
            raise IndexUnusableError(
                f"index at {index_dir} is inconsistent ({index.ntotal} vectors of {index.d}-d, "
                f"{len(records)} chunk records, manifest says {dimension}-d): {_REINDEX}"
            )
        if any("chunk_id" not in r or "article_id" not in r for r in records):
            raise IndexUnusableError(f"chunk metadata at {index_dir} is malformed: {_REINDEX}")
        hnsw = manifest.get("hnsw") or {}
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = int(hnsw.get("ef_search", HNSW_EF_SEARCH))
        ivf = manifest.get("ivf") or {}
        if ivf and hasattr(index, "nprobe"):
            index.nprobe = int(ivf.get("nprobe", IVF_NPROBE))
        vectors = _load_rows(index_dir / VECTORS_FILE, len(records), dimension)
        lexical = None
        if manifest.get("lexical"):
            lexical = LexicalIndex.load(index_dir / LEXICAL_SUBDIR, manifest["lexical"], len(records))
        sentences = None
        if manifest.get("sentences"):
            sentences = _load_sentences(index_dir, int(manifest["sentences"].get("count", -1)), dimension)
        return cls(
            index_dir, manifest, index, records, encoder,
            vectors=vectors, lexical=lexical, sentences=sentences, options=options, late_chunking=late_chunking,
        )

    # ------------------------------------------------------------------ searching
    def search(
        self, query: str, k: int = 5, *, intents: IntentDistribution | None = None,
        options: RetrievalOptions | None = None,
    ) -> list[Passage]:
        """The ``k`` best articles for ``query`` (best chunk each, best first); an empty query gives ``[]``.

        ``intents`` (intent -> probability, e.g. the classifier's top 3) boosts the articles whose
        front matter names them.
        """
        return self.search_many([query], k, intents=[intents] if intents else None, options=options)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 5,
        *,
        intents: Sequence[IntentDistribution | None] | None = None,
        options: RetrievalOptions | None = None,
    ) -> list[list[Passage]]:
        """Search several queries: one encoder call for them all (batch evaluation, benchmarks)."""
        opts = options or self.options
        results: list[list[Passage]] = [[] for _ in queries]
        wanted = [i for i, q in enumerate(queries) if q and q.strip()]
        if not wanted or k <= 0 or not self._records:
            return results
        texts = [self.reading(queries[i], opts) for i in wanted]
        parts = [self._sentences_of_query(t) if opts.per_sentence else [] for t in texts]
        vectors = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        sentence_vectors = self._query_sentence_vectors(texts, parts)
        for row, position in enumerate(wanted):
            distribution = intents[position] if intents is not None and position < len(intents) else None
            results[position] = self._search_one(
                texts[row], vectors[row], parts[row], sentence_vectors[row], k, distribution, opts
            )
        return results

    def reading(self, query: str, options: RetrievalOptions | None = None) -> str:
        """The text the models read for ``query``: trimmed, capped and (by default) typo-repaired."""
        text = query.strip()[:MAX_QUERY_CHARS]
        return self.spelling.normalise(text) if (options or self.options).spelling else text

    def _query_sentence_vectors(self, texts: Sequence[str], parts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per query, the vectors of its sentences (``parts``): the message's own sentence passes when the
        encoder read it so (``sentence_vectors``), else late-chunked when the encoder allows.

        With :attr:`late_chunking` and an encoder that offers token states, a sentence's vector is
        pooled from the whole message's forward pass (:mod:`~csassist.core.knowledge.late_chunking`);
        the sentences that cannot be (no token states, not located, past the encoder's length limit)
        are encoded on their own, all in one call.
        """
        out = [np.zeros((len(p), self.encoder.dimension), dtype=np.float32) for p in parts]
        getter = getattr(self.encoder, "token_states", None) if self.late_chunking else None
        own = getattr(self.encoder, "sentence_vectors", None)
        todo: list[tuple[int, int]] = []
        for row, sentences in enumerate(parts):
            if not sentences:
                continue
            if own is not None:  # the message was read sentence by sentence: its own passes' vectors
                known = own(texts[row], sentences)
                missing = [j for j, vector in enumerate(known) if vector is None]
                for j, vector in enumerate(known):
                    if vector is not None:
                        out[row][j] = vector
                if not missing:
                    continue
                if len(missing) < len(sentences):
                    todo.extend((row, j) for j in missing)
                    continue
            states = getter(texts[row]) if getter is not None else None
            if states is None:
                todo.extend((row, j) for j in range(len(sentences)))
                continue
            spans = locate_sentences(states.text, sentences)
            pooled, covered = pool_spans(states, [span or (0, 0) for span in spans])
            for j, ok in enumerate(covered):
                if ok:
                    out[row][j] = pooled[j]
                else:
                    todo.append((row, j))
        if todo:
            fresh = np.asarray(self.encoder.encode([parts[row][j] for row, j in todo]), dtype=np.float32)
            for (row, j), vector in zip(todo, fresh, strict=True):
                out[row][j] = vector
        return out

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 5,
        *,
        positions: Sequence[int] | None = None,
        out: list[list[Passage]] | None = None,
    ) -> list[list[Passage]]:
        """Dense-only search of already-embedded (unit-norm) query vectors, one hit per article."""
        positions = list(positions) if positions is not None else list(range(len(vectors)))
        results = out if out is not None else [[] for _ in positions]
        for row, position in enumerate(positions):
            dense = self._dense_ranking(vectors[row], self.options.candidates)
            fused = reciprocal_rank_fusion([(dense, 1.0)], self.options.rrf_k)
            results[position] = self._passages_for(fused, vectors[row], (), k, None, self.options)
        return results

    def best_similarity(self, vectors: np.ndarray) -> np.ndarray:
        """Per query vector, the best cosine to any chunk or KB sentence (how well the KB covers it)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not len(vectors) or not self.size:
            return np.zeros(len(vectors), dtype=np.float32)
        scores, _ = self._index.search(vectors, 1)
        best = scores[:, 0]
        if len(self._sentence_texts):
            best = np.maximum(best, (vectors @ self._sentence_vectors.T).max(axis=1))
        return best  # type: ignore[no-any-return]

    def _sentences_of_query(self, text: str) -> list[str]:
        """The sentences of a long message worth searching alone ([] for short messages)."""
        if len(text) < LONG_MESSAGE_CHARS:
            return []
        sentences = split_sentences(text)
        return sentences[:MAX_QUERY_SENTENCES] if len(sentences) >= 2 else []

    def _dense_ranking(self, vector: np.ndarray, depth: int) -> list[int]:
        """Chunk rows nearest to ``vector`` (FAISS; flat, HNSW or IVF as built)."""
        fetch = min(self.size, depth)
        _, ids = self._index.search(np.ascontiguousarray(vector[None, :], dtype=np.float32), fetch)
        return [int(i) for i in ids[0] if i >= 0]

    def _sentence_ranking(self, vector: np.ndarray, depth: int) -> list[int]:
        """Chunk rows ranked by their best sentence's similarity to ``vector``."""
        sims = self._sentence_vectors @ vector
        best = np.full(self.size, -1.0, dtype=np.float32)
        np.maximum.at(best, self._sentence_rows, sims)
        return ranked(best, depth)

    def _search_one(
        self,
        text: str,
        vector: np.ndarray,
        sentences: Sequence[str],
        sentence_vectors: np.ndarray,
        k: int,
        distribution: IntentDistribution | None,
        opts: RetrievalOptions,
    ) -> list[Passage]:
        """Fuse every enabled signal for one query into at most ``k`` article-level passages.

        The fused ranking does not depend on the intent boost (added per article afterwards), so it is
        remembered per (text, options, late chunking): each message is searched twice, unboosted for the KB's vote on
        its intent and boosted for the KB panel, and the second search reuses the first one's ranking.
        """
        key = (text, opts, self.late_chunking)
        with self._memo_lock:
            fused = self._fused_memo.get(key)
            if fused is not None:
                self._fused_memo.move_to_end(key)
        if fused is None:
            fused = self._fuse(text, vector, sentences, sentence_vectors, opts)
            with self._memo_lock:
                self._fused_memo[key] = fused
                while len(self._fused_memo) > FUSED_MEMO:
                    self._fused_memo.popitem(last=False)
        return self._passages_for(fused, vector, sentence_vectors, k, distribution, opts)

    def _fuse(
        self,
        text: str,
        vector: np.ndarray,
        sentences: Sequence[str],
        sentence_vectors: np.ndarray,
        opts: RetrievalOptions,
    ) -> dict[int, float]:
        """Reciprocal-rank fusion of the dense, BM25, KB-sentence and per-sentence rankings of one query."""
        depth = opts.candidates
        lists: list[tuple[list[int], float]] = [(self._dense_ranking(vector, depth), 1.0)]
        use_lexical = self.lexical is not None and opts.lexical
        use_chars = self.lexical is not None and opts.chars
        if use_lexical:
            assert self.lexical is not None
            lists.append((ranked(self.lexical.scores(text, "word"), depth, positive_only=True), opts.lexical_weight))
        if use_chars:
            assert self.lexical is not None
            lists.append((ranked(self.lexical.scores(text, "char"), depth, positive_only=True), opts.chars_weight))
        if opts.kb_sentences > 0 and len(self._sentence_texts):
            lists.append((self._sentence_ranking(vector, depth), opts.kb_sentences))
        for sentence, sentence_vector in zip(sentences, sentence_vectors, strict=True):
            lists.append((self._dense_ranking(sentence_vector, depth), opts.sentence_weight))
            if use_lexical:
                assert self.lexical is not None
                words = ranked(self.lexical.scores(sentence, "word"), depth, positive_only=True)
                lists.append((words, opts.sentence_weight * opts.lexical_weight))
        return reciprocal_rank_fusion(lists, opts.rrf_k)

    def _passages_for(
        self,
        fused: Mapping[int, float],
        vector: np.ndarray,
        sentence_vectors: np.ndarray | Sequence[np.ndarray],
        k: int,
        distribution: IntentDistribution | None,
        opts: RetrievalOptions,
    ) -> list[Passage]:
        """Group fused chunk scores by article, add the intent boost, and build the passages."""
        groups = group_by_article(fused, self._article_of)
        if distribution and opts.intent_boost > 0:
            boosted = [
                (a, c, s + intent_bonus(self._passages[c].intents, distribution, opts.intent_boost, opts.rrf_k))
                for a, c, s in groups
            ]
            groups = sorted(boosted, key=lambda t: (-t[2], t[1]))
        out = []
        for _article, chunk, _score in groups[:k]:
            base = self._passages[chunk]
            out.append(
                Passage(
                    chunk_id=base.chunk_id,
                    article_id=base.article_id,
                    title=base.title,
                    text=base.text,
                    source=base.source,
                    score=self._cosine(chunk, vector),
                    intents=base.intents,
                    evidence=self._evidence(chunk, vector, sentence_vectors),
                )
            )
        return out

    def _cosine(self, chunk: int, vector: np.ndarray) -> float:
        """Dense similarity of the query and a chunk (exact, from the stored vectors)."""
        if self._vectors is None:
            return float(self._index.reconstruct(chunk) @ vector)
        return float(np.dot(self._vectors[chunk], vector))

    def _evidence(self, chunk: int, vector: np.ndarray, extra: np.ndarray | Sequence[np.ndarray]) -> str:
        """The chunk's sentence nearest to the query (or to one of its sentences); '' without sentences."""
        rows = self._sentences_of.get(chunk)
        if not rows:
            return ""
        queries = np.vstack([vector[None, :], *(np.asarray(v)[None, :] for v in extra)])
        sims = self._sentence_vectors[rows] @ queries.T
        return self._sentence_texts[rows[int(np.argmax(sims.max(axis=1)))]]


def _load_rows(path: Path, rows: int, dimension: int) -> np.ndarray | None:
    """The stored chunk vectors (memory-mapped), or None when absent or not matching the chunks."""
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vectors.shape != (rows, dimension):
        raise IndexUnusableError(f"{path} holds {vectors.shape} vectors for {rows} chunks: {_REINDEX}")
    return vectors  # type: ignore[no-any-return]


def _load_sentences(index_dir: Path, count: int, dimension: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Sentence records and vectors, checked against the manifest's count."""
    try:
        records = read_sentence_records(index_dir)
        vectors = np.load(index_dir / SENTENCE_VECTORS_FILE, allow_pickle=False)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise IndexUnusableError(f"sentence data at {index_dir} is unreadable ({exc}): {_REINDEX}") from exc
    if len(records) != count or vectors.shape != (count, dimension):
        raise IndexUnusableError(f"sentence data at {index_dir} ({SENTENCES_FILE}) is inconsistent: {_REINDEX}")
    return records, np.asarray(vectors, dtype=np.float32)

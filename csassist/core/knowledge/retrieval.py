"""Search a built index: the query is embedded by the same model that built it, then FAISS finds neighbours.

:meth:`Retriever.open` checks the manifest against what it is about to use (format version, embedder,
dimension, files present and consistent) and refuses with advice to re-index on any mismatch: a
vector from another model lives in another space, and searching it would return confident nonsense.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.errors import IndexUnusableError
from csassist.core.knowledge.embedder import DEFAULT_EMBEDDER, Encoder, load_encoder
from csassist.core.knowledge.index import (
    CHUNKS_FILE,
    FORMAT_VERSION,
    HNSW_EF_SEARCH,
    INDEX_FILE,
    IVF_NPROBE,
    configure_faiss_threads,
    read_chunk_records,
    read_manifest,
)
from csassist.core.types import Passage

_REINDEX = "re-index with `csassist index KB --rebuild`"
#: Candidates fetched per requested hit, so one article's many chunks cannot crowd out the others.
_OVERFETCH = 4
#: Chunks of one article allowed in the results before other articles' chunks take precedence.
PER_ARTICLE = 2


class Retriever:
    """A loaded index plus its encoder; ``search`` is thread-safe (FAISS reads, a locked encoder)."""

    def __init__(
        self, index_dir: Path, manifest: dict[str, Any], index: Any, records: list[dict[str, Any]], encoder: Encoder
    ) -> None:
        self.index_dir = index_dir
        self.manifest = manifest
        self.encoder = encoder
        self._index = index
        self._records = records
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

    @property
    def size(self) -> int:
        """Number of indexed chunks."""
        return len(self._records)

    @classmethod
    def open(cls, index_dir: Path, encoder: Encoder | None = None) -> Retriever:
        """Load and validate an index; ``encoder=None`` loads the embedder named in the manifest."""
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
        return cls(index_dir, manifest, index, records, encoder)

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """The ``k`` best passages for ``query`` (best first); an empty query gives ``[]``."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Passage]]:
        """Search several queries with one encoder call (used by batch evaluation and benchmarks)."""
        results: list[list[Passage]] = [[] for _ in queries]
        wanted = [i for i, q in enumerate(queries) if q and q.strip()]
        if not wanted or k <= 0 or not self._records:
            return results
        vectors = self.encoder.encode([queries[i].strip() for i in wanted])
        return self.search_vectors(np.asarray(vectors, dtype=np.float32), k, positions=wanted, out=results)

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 5,
        *,
        positions: Sequence[int] | None = None,
        out: list[list[Passage]] | None = None,
    ) -> list[list[Passage]]:
        """Search already-embedded (unit-norm) query vectors; ``positions`` place results into ``out``."""
        positions = list(positions) if positions is not None else list(range(len(vectors)))
        results = out if out is not None else [[] for _ in positions]
        fetch = min(self.size, max(k * _OVERFETCH, k))
        scores, ids = self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), fetch)
        for row, position in enumerate(positions):
            hits = [(float(s), int(i)) for s, i in zip(scores[row], ids[row], strict=False) if i >= 0]
            results[position] = self._select(hits, k)
        return results

    def _select(self, hits: list[tuple[float, int]], k: int) -> list[Passage]:
        """Top ``k`` by score, with at most :data:`PER_ARTICLE` chunks of one article ahead of other articles.

        Several chunks of one article are kept (they are distinct passages), yet a long article cannot
        fill every slot and push a different relevant article out; its further chunks only fill slots
        nothing else wants.  The result is sorted by score, so articles appear in the order of their
        best chunk.
        """
        per_article: dict[str, int] = {}
        first: list[tuple[float, int]] = []
        rest: list[tuple[float, int]] = []
        for score, idx in sorted(hits, key=lambda h: -h[0]):
            article = self._passages[idx].article_id
            per_article[article] = per_article.get(article, 0) + 1
            (first if per_article[article] <= PER_ARTICLE else rest).append((score, idx))
        chosen = (first + rest)[:k]
        chosen.sort(key=lambda h: -h[0])
        out = []
        for score, idx in chosen:
            base = self._passages[idx]
            out.append(
                Passage(
                    chunk_id=base.chunk_id,
                    article_id=base.article_id,
                    title=base.title,
                    text=base.text,
                    source=base.source,
                    score=score,
                    intents=base.intents,
                )
            )
        return out

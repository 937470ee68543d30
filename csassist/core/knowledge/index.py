"""Build the FAISS index of a knowledge base: embed chunks, write index + metadata + manifest.

The index directory is the contract between ``csassist index`` and every reader (search, the
assistant, benchmarks):

* ``index.faiss``   -- FAISS inner-product index over L2-normalised vectors (cosine similarity);
* ``chunks.jsonl``  -- one JSON object per vector, in index order (ids, title, text, source...);
* ``vectors.npy``   -- the same vectors as float32, kept so the next build re-embeds only what changed;
* ``manifest.json`` -- format version, embedder id and dimension, index type and parameters,
  per-chunk content hashes, counts and build time.  Readers refuse an index whose manifest does not
  match them instead of returning silently wrong neighbours.
* ``lexical/``      -- BM25 views of the same chunks (:mod:`~csassist.core.knowledge.lexical`), the
  exact-word half of hybrid retrieval;
* ``sentences.jsonl`` + ``sentences.npy`` -- every chunk's sentences and their vectors, so a search
  can say which sentence of an answer matched without encoding anything at query time;
* ``intent/``, ``oos/`` -- written by the intent head and the out-of-scope detector, preserved
  across rebuilds.

Builds are atomic: everything is written into a temporary directory that replaces the live one in a
single rename, so Ctrl-C or a crash at any point leaves the previous index usable.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.atomic import atomic_directory
from csassist.core.errors import IndexUnusableError, KBError
from csassist.core.knowledge.chunking import content_hash
from csassist.core.knowledge.embedder import Encoder
from csassist.core.knowledge.kb import KBContents, load_kb
from csassist.core.knowledge.lexical import LEXICAL_SUBDIR, LexicalIndex
from csassist.core.knowledge.sentences import split_sentences
from csassist.core.progress import ProgressCallback, ProgressEvent
from csassist.core.types import Chunk, IntentExample, KBProblem

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
VECTORS_FILE = "vectors.npy"
MANIFEST_FILE = "manifest.json"
INTENT_SUBDIR = "intent"
OOS_SUBDIR = "oos"
SENTENCES_FILE = "sentences.jsonl"
SENTENCE_VECTORS_FILE = "sentences.npy"
#: Model directories fitted beside the index; a rebuild carries them over unchanged.
PRESERVED_SUBDIRS = (INTENT_SUBDIR, OOS_SUBDIR)
INDEX_TYPES = ("auto", "flat", "hnsw", "ivf")

#: "auto" switches from exact (flat) to approximate (HNSW) search at this many vectors: below it a
#: flat scan of 384-d vectors takes a few milliseconds on one core, above it HNSW keeps p99 low.
HNSW_THRESHOLD = 50_000
#: HNSW graph degree, construction and search breadth: measured (bench/retrieval.py) to give
#: recall@10 >= 0.95 against flat on 100k clustered 384-d vectors at well under 5 ms a query.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
#: IVF (inverted lists over k-means cells; smaller and faster to build than HNSW, needs training):
#: about 4*sqrt(n) cells, at least 39 training points per cell, and this many cells probed a query.
IVF_NPROBE = 16
#: Texts embedded per encoder call; the progress callback fires after each batch.
EMBED_BATCH = 64



@dataclass(frozen=True)
class IndexReport:
    """What a build did: counts for the summary table, problems to list, where it went."""

    out_dir: Path
    index_type: str
    embedder: str
    dimension: int
    articles: int
    chunks: int
    embedded: int  # chunks whose text was new or changed, so the encoder ran on them
    reused: int  # chunks whose vector came from the previous index (same content hash)
    removed: int  # previous vectors no longer used (deleted or changed chunks)
    files_read: int
    problems: tuple[KBProblem, ...]
    intent_examples: tuple[IntentExample, ...] = ()
    seconds: float = 0.0
    embed_seconds: float = 0.0
    full_rebuild_reason: str = ""  # why nothing could be reused ("" when incremental or first build)
    extra: dict[str, Any] = field(default_factory=dict)
    precision: str = "float32"  # the embedder's weights (int8 with ONNX Runtime by default)

    @property
    def clean(self) -> bool:
        """True when nothing in the KB was skipped."""
        return not self.problems


def configure_faiss_threads(threads: int | None = None) -> None:
    """One OpenMP thread unless told otherwise: on 2 shared cores more threads only add noise."""
    import faiss

    wanted = threads if threads and threads > 0 else int(os.environ.get("CSASSIST_THREADS", "1"))
    faiss.omp_set_num_threads(wanted)


def choose_index_type(requested: str, n_vectors: int) -> str:
    """Resolve ``auto`` by size; reject unknown names with the list of valid ones."""
    if requested not in INDEX_TYPES:
        raise ValueError(f"unknown index type {requested!r}: choose one of {', '.join(INDEX_TYPES)}")
    if requested != "auto":
        return requested
    return "hnsw" if n_vectors >= HNSW_THRESHOLD else "flat"


def make_faiss_index(vectors: np.ndarray, index_type: str) -> Any:
    """A FAISS inner-product index of the given type holding ``vectors`` (rows of unit norm)."""
    import faiss

    dim = int(vectors.shape[1])
    index: Any
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif index_type == "ivf":
        nlist = ivf_cells(len(vectors))
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        index.nprobe = min(IVF_NPROBE, nlist)
    else:
        raise ValueError(f"cannot build index type {index_type!r}")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def ivf_cells(n_vectors: int) -> int:
    """IVF cell count: ~4*sqrt(n), but never fewer than 39 training points per cell (FAISS's minimum)."""
    return max(1, min(4 * int(math.sqrt(n_vectors)), n_vectors // 39))


def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The manifest of an index directory; :class:`IndexUnusableError` if absent or unreadable."""
    path = Path(index_dir) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexUnusableError(f"no index at {index_dir}: run `csassist index kb/`") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexUnusableError(
            f"index manifest {path} is unreadable ({exc}): re-index with `csassist index KB --rebuild`"
        ) from exc
    if not isinstance(data, dict):
        raise IndexUnusableError(f"index manifest {path} is malformed: re-index with `csassist index KB --rebuild`")
    return data


def read_chunk_records(index_dir: Path) -> list[dict[str, Any]]:
    """The per-vector metadata records of an index directory, in index order."""
    path = Path(index_dir) / CHUNKS_FILE
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
    return records


def _chunk_record(chunk: Chunk) -> dict[str, Any]:
    """JSON-ready metadata of one chunk (everything a reader needs to show and cite it)."""
    return {
        "chunk_id": chunk.chunk_id,
        "article_id": chunk.article_id,
        "title": chunk.title,
        "text": chunk.text,
        "source": chunk.source,
        "intents": list(chunk.intents),
        "tags": list(chunk.tags),
        "content_hash": chunk.content_hash,
    }


def _previous_vectors(out_dir: Path, encoder: Encoder) -> tuple[dict[str, np.ndarray], str]:
    """Vectors of the live index keyed by content hash, or ``({}, reason)`` when they cannot be reused."""
    if not (out_dir / MANIFEST_FILE).exists():
        return {}, ""
    try:
        manifest = read_manifest(out_dir)
    except IndexUnusableError as exc:
        return {}, f"previous index unreadable ({exc})"
    if manifest.get("format_version") != FORMAT_VERSION:
        return (
            {},
            f"previous index has format version {manifest.get('format_version')}, this build writes {FORMAT_VERSION}",
        )
    embedder = manifest.get("embedder", {})
    if embedder.get("model_id") != encoder.model_id or embedder.get("dimension") != encoder.dimension:
        return {}, (
            f"previous index was built with embedder {embedder.get('model_id')!r} "
            f"({embedder.get('dimension')}-d); now {encoder.model_id!r} ({encoder.dimension}-d)"
        )
    if embedder.get("precision", "float32") != precision_of(encoder):
        return {}, (f"previous index was built with {embedder.get('precision', 'float32')} embedder weights; "
                    f"now {precision_of(encoder)}")
    try:
        vectors = np.load(out_dir / VECTORS_FILE, allow_pickle=False)
        records = read_chunk_records(out_dir)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        return {}, f"previous vectors unreadable ({exc})"
    if vectors.ndim != 2 or vectors.shape != (len(records), encoder.dimension):
        return {}, "previous vectors do not match their metadata"
    return {str(r.get("content_hash")): vectors[i] for i, r in enumerate(records)}, ""


def build_index(
    kb_root: Path,
    out_dir: Path,
    encoder: Encoder,
    *,
    rebuild: bool = False,
    index_type: str = "auto",
    progress: ProgressCallback | None = None,
    kb: KBContents | None = None,
) -> IndexReport:
    """Index the KB at ``kb_root`` into ``out_dir``, re-embedding only chunks whose text changed.

    ``rebuild`` ignores the previous vectors.  ``progress`` receives an ``embed``
    :class:`ProgressEvent` as chunks are embedded (``total`` = chunks that need the encoder); an exception raised there -- e.g. a
    KeyboardInterrupt -- aborts the build and leaves the previous index untouched.  ``kb`` may pass an
    already loaded KB.  Raises :class:`KBError` when the KB yields no chunk at all.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).expanduser()
    _check_replaceable(out_dir)
    configure_faiss_threads()
    contents = kb if kb is not None else load_kb(Path(kb_root))
    if not contents.chunks:
        details = "; ".join(str(p) for p in contents.problems[:5])
        raise KBError(f"no usable articles in {kb_root}" + (f" ({details})" if details else ""))
    resolved_type = choose_index_type(index_type, len(contents.chunks))

    if rebuild:
        previous: dict[str, np.ndarray] = {}
        reason = "--rebuild requested" if (out_dir / MANIFEST_FILE).exists() else ""
    else:
        previous, reason = _previous_vectors(out_dir, encoder)

    texts = contents.embedding_texts()
    hashes = [c.content_hash for c in contents.chunks]
    todo = sorted({h: i for i, h in reversed(list(enumerate(hashes))) if h not in previous}.values())
    embed_started = time.perf_counter()
    fresh = _embed(encoder, [texts[i] for i in todo], progress)
    embed_seconds = time.perf_counter() - embed_started
    new_by_hash = {hashes[i]: fresh[row] for row, i in enumerate(todo)}

    vectors = np.empty((len(hashes), encoder.dimension), dtype=np.float32)
    for row, digest in enumerate(hashes):
        vectors[row] = new_by_hash[digest] if digest in new_by_hash else previous[digest]
    used = set(hashes)
    removed = sum(1 for digest in previous if digest not in used)

    index = make_faiss_index(vectors, resolved_type)
    lexical = LexicalIndex.build(texts)
    sentence_records, sentence_vectors, sentences_embedded = _sentence_vectors(
        contents.chunks, encoder, {} if rebuild else _previous_sentence_vectors(out_dir, encoder)
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "embedder": {"model_id": encoder.model_id, "dimension": encoder.dimension, "precision": precision_of(encoder)},
        "index_type": resolved_type,
        "metric": "inner_product",
        "normalized": True,
        "hnsw": {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}
        if resolved_type == "hnsw"
        else None,
        "ivf": {"nlist": int(index.nlist), "nprobe": int(index.nprobe)} if resolved_type == "ivf" else None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kb_root": str(Path(kb_root).expanduser().resolve()),
        "counts": {
            "articles": len(contents.articles),
            "chunks": len(contents.chunks),
            "problems": len(contents.problems),
            "files_read": contents.files_read,
            "intent_examples": len(contents.intent_examples),
        },
        "content_hashes": {c.chunk_id: c.content_hash for c in contents.chunks},
        "sentences": {"count": len(sentence_records)},
    }
    _write(out_dir, index, vectors, contents.chunks, manifest, lexical, (sentence_records, sentence_vectors))
    return IndexReport(
        out_dir=out_dir,
        index_type=resolved_type,
        embedder=encoder.model_id,
        dimension=encoder.dimension,
        precision=precision_of(encoder),
        articles=len(contents.articles),
        chunks=len(contents.chunks),
        embedded=len(todo),
        reused=len(hashes) - len(todo),
        removed=removed,
        files_read=contents.files_read,
        problems=contents.problems,
        intent_examples=contents.intent_examples,
        seconds=time.perf_counter() - started,
        embed_seconds=embed_seconds,
        full_rebuild_reason=reason,
        extra={"sentences": len(sentence_records), "sentences_embedded": sentences_embedded},
    )


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a directory that is not an index: the atomic swap would delete its files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise IndexUnusableError(f"{out_dir} exists and is not a directory: choose another --out")
    if out_dir.is_dir() and not (out_dir / MANIFEST_FILE).exists():
        foreign = [p.name for p in out_dir.iterdir() if p.name not in PRESERVED_SUBDIRS]
        if foreign:
            raise IndexUnusableError(
                f"{out_dir} is not empty and holds no csassist index ({', '.join(sorted(foreign)[:3])}...): "
                "choose an empty or new --out directory"
            )


def _embed(encoder: Encoder, texts: Sequence[str], progress: ProgressCallback | None) -> np.ndarray:
    """Encode in batches, reporting progress after each; vectors are re-normalised defensively."""
    total = len(texts)
    if progress is not None:
        progress(ProgressEvent("embed", 0, total))
    parts = []
    for start in range(0, total, EMBED_BATCH):
        batch = encoder.encode(texts[start : start + EMBED_BATCH], batch_size=EMBED_BATCH)
        parts.append(np.asarray(batch, dtype=np.float32))
        if progress is not None:
            progress(ProgressEvent("embed", min(start + EMBED_BATCH, total), total))
    if not parts:
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    out = np.concatenate(parts)
    if out.shape != (total, encoder.dimension):
        raise IndexUnusableError(
            f"embedder {encoder.model_id!r} returned shape {out.shape}, expected ({total}, {encoder.dimension})"
        )
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def _sentence_vectors(
    chunks: Sequence[Chunk], encoder: Encoder, previous: dict[str, np.ndarray]
) -> tuple[list[dict[str, Any]], np.ndarray, int]:
    """Every chunk's sentences (``{"row", "text"}``) and their unit vectors, re-embedding only new ones."""
    pairs = [(row, s) for row, chunk in enumerate(chunks) for s in split_sentences(chunk.text)]
    records: list[dict[str, Any]] = [{"row": row, "text": s} for row, s in pairs]
    hashes = [content_hash(s) for _, s in pairs]
    todo = sorted({h: i for i, h in reversed(list(enumerate(hashes))) if h not in previous}.values())
    fresh = _embed(encoder, [pairs[i][1] for i in todo], None)
    by_hash = {hashes[i]: fresh[n] for n, i in enumerate(todo)}
    vectors = np.empty((len(records), encoder.dimension), dtype=np.float32)
    for row, digest in enumerate(hashes):
        vectors[row] = by_hash[digest] if digest in by_hash else previous[digest]
    return records, vectors, len(todo)


def precision_of(encoder: Encoder) -> str:
    """The weights' precision behind ``encoder``'s vectors (``int8`` ONNX weights, else ``float32``).

    Recorded in the manifest: a re-index after ``[retrieval] precision`` changed re-embeds everything
    rather than mixing int8 and float vectors of unchanged passages with new ones.
    """
    return "int8" if getattr(encoder, "precision", "float32") == "int8" else "float32"


def _previous_sentence_vectors(out_dir: Path, encoder: Encoder) -> dict[str, np.ndarray]:
    """Sentence vectors of the live index keyed by text hash ({} when absent or from another embedder)."""
    try:
        manifest = read_manifest(out_dir)
        embedder = manifest.get("embedder", {})
        if embedder.get("model_id") != encoder.model_id or embedder.get("dimension") != encoder.dimension:
            return {}
        if embedder.get("precision", "float32") != precision_of(encoder):
            return {}
        vectors = np.load(out_dir / SENTENCE_VECTORS_FILE, allow_pickle=False)
        records = read_sentence_records(out_dir)
    except (IndexUnusableError, OSError, ValueError, json.JSONDecodeError):
        return {}
    if vectors.ndim != 2 or vectors.shape != (len(records), encoder.dimension):
        return {}
    return {content_hash(str(r.get("text", ""))): vectors[i] for i, r in enumerate(records)}


def read_sentence_records(index_dir: Path) -> list[dict[str, Any]]:
    """The ``{"row", "text"}`` sentence records of an index directory, in vector order."""
    path = Path(index_dir) / SENTENCES_FILE
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write_lines(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object a line, fsynced (the directory swap must not publish a half-written file)."""
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` followed by fsync."""
    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def _write(
    out_dir: Path,
    index: Any,
    vectors: np.ndarray,
    chunks: Sequence[Chunk],
    manifest: dict[str, Any],
    lexical: LexicalIndex,
    sentences: tuple[list[dict[str, Any]], np.ndarray],
) -> None:
    """Write all files into a temp dir (keeping fitted models) and swap it in with one rename."""
    import faiss

    with atomic_directory(out_dir) as tmp:
        for name in PRESERVED_SUBDIRS:
            if (out_dir / name).is_dir():
                shutil.copytree(out_dir / name, tmp / name)
        faiss.write_index(index, str(tmp / INDEX_FILE))
        _save_array(tmp / VECTORS_FILE, vectors)
        _write_lines(tmp / CHUNKS_FILE, [_chunk_record(chunk) for chunk in chunks])
        _write_lines(tmp / SENTENCES_FILE, sentences[0])
        _save_array(tmp / SENTENCE_VECTORS_FILE, sentences[1])
        manifest["lexical"] = lexical.save(tmp / LEXICAL_SUBDIR)
        # The manifest goes last: a directory with a manifest is a complete one.
        with (tmp / MANIFEST_FILE).open("w", encoding="utf-8") as handle:
            json.dump(manifest, handle, ensure_ascii=False, indent=1)
            handle.flush()
            os.fsync(handle.fileno())

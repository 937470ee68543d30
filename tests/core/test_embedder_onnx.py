"""The embedder on ONNX Runtime: the same vectors as PyTorch, exported once, and a clear fallback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from csassist.core.errors import ModelMissingError
from csassist.core.knowledge import embedder as embedder_module
from csassist.core.knowledge import embedder_onnx
from csassist.core.knowledge.embedder import load_encoder

pytest.importorskip("onnxruntime")

TEXTS = [
    "where is my parcel?",
    "",
    "I ordered a linen duvet set on 3 March, order LK-559201, and the courier says it was delivered "
    "to my neighbour but nobody on the street has it. What can you do?",
    "broken \ud800 surrogate and [bold]markup[/bold]",
]


@pytest.fixture
def fresh_runtime_cache() -> Any:
    """Each test loads through the runtime cache from scratch (it is per process otherwise)."""
    saved = dict(embedder_module._RUNTIME_ENCODERS)
    embedder_module._RUNTIME_ENCODERS.clear()
    yield
    embedder_module._RUNTIME_ENCODERS.clear()
    embedder_module._RUNTIME_ENCODERS.update(saved)


@pytest.mark.real_model
def test_onnx_vectors_equal_torch_and_the_export_is_reused(tmp_path: Path, fresh_runtime_cache: Any) -> None:
    torch_encoder = load_encoder(None)
    onnx_encoder = load_encoder(None, runtime="onnx", cache_dir=tmp_path)
    assert getattr(onnx_encoder, "runtime", "") == "onnx"
    assert onnx_encoder.model_id == torch_encoder.model_id and onnx_encoder.dimension == torch_encoder.dimension
    a, b = torch_encoder.encode(TEXTS), onnx_encoder.encode(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and b.dtype == np.float32
    assert np.abs(a - b).max() < 1e-4  # an index built with either runtime serves the other
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert onnx_encoder.encode([]).shape == (0, 384)
    exported = list(tmp_path.glob("*.onnx"))
    assert len(exported) == 1 and not list(tmp_path.glob(".*.tmp"))  # written under a temp name, renamed
    stamp = exported[0].stat().st_mtime_ns
    embedder_module._RUNTIME_ENCODERS.clear()
    again = load_encoder(None, runtime="auto", cache_dir=tmp_path)
    assert getattr(again, "runtime", "") == "onnx" and exported[0].stat().st_mtime_ns == stamp  # not re-exported
    assert np.abs(again.encode(TEXTS[:1]) - b[:1]).max() < 1e-6

    # Several texts packed into one run come out as each alone (own segment, own positions).
    texts = [t for t in TEXTS if t]
    packed = onnx_encoder.packed_states(texts)  # type: ignore[attr-defined]
    for text, states in zip(texts, packed, strict=True):
        alone = onnx_encoder.token_states(text)  # type: ignore[attr-defined]
        assert states.text == alone.text and np.array_equal(states.offsets, alone.offsets)
        assert np.abs(states.states - alone.states).max() < 1e-4
    assert onnx_encoder.packed_states([]) == []  # type: ignore[attr-defined]

    # A damaged export (a truncated copy, another program's file) is exported again, once.
    exported[0].write_bytes(b"not an onnx model")
    embedder_module._RUNTIME_ENCODERS.clear()
    repaired = load_encoder(None, runtime="onnx", cache_dir=tmp_path)
    assert getattr(repaired, "runtime", "") == "onnx" and exported[0].stat().st_size > 1_000_000
    assert np.abs(repaired.encode(TEXTS[:1]) - b[:1]).max() < 1e-6


@pytest.mark.real_model
def test_int8_vectors_stay_near_float_and_never_depend_on_the_batch(tmp_path: Path, fresh_runtime_cache: Any) -> None:
    float_encoder = load_encoder(None, runtime="onnx", cache_dir=tmp_path)
    root = logging.getLogger()
    saved = list(root.handlers)  # as in the CLI: no root handler (pytest installs its own)
    for handler in saved:
        root.removeHandler(handler)
    try:
        int8 = load_encoder(None, runtime="onnx", cache_dir=tmp_path, precision="int8")
        assert root.handlers == []  # the quantiser's logging.warning() installed one: taken away again
    finally:
        for handler in saved:
            root.addHandler(handler)
    assert getattr(int8, "precision", "") == "int8" and getattr(float_encoder, "precision", "") == "float32"
    assert int8.model_id == float_encoder.model_id and int8.dimension == float_encoder.dimension
    assert sorted(p.name.endswith("-int8.onnx") for p in tmp_path.glob("*.onnx")) == [False, True]
    assert not list(tmp_path.glob(".*.tmp"))  # quantised under a temp name, renamed
    texts = [t for t in TEXTS if t]
    batched = int8.encode(texts)
    cosines = (batched * float_encoder.encode(texts)).sum(axis=1)
    assert cosines.min() > 0.95 and np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-4)
    # One text per run: a text's vector is the same alone or batched with longer ones.
    for row, text in enumerate(texts):
        assert np.array_equal(int8.encode([text])[0], batched[row])
    states = int8.token_states(texts[1])  # type: ignore[attr-defined]
    assert float(states.pooled() @ batched[1]) > 0.99999
    # A second load reuses the quantised file; the float export stays the float encoder's.
    embedder_module._RUNTIME_ENCODERS.clear()
    again = load_encoder(None, runtime="auto", cache_dir=tmp_path, precision="int8")
    assert np.array_equal(again.encode(texts[:1])[0], batched[0])


def test_auto_falls_back_to_torch_with_a_reason(tmp_path: Path, fresh_runtime_cache: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    class TorchEncoderStandIn:
        """What the fallback touches on the PyTorch encoder: its pipeline, runtime and reason."""

        model = object()
        runtime = "torch"
        fallback_reason = ""

    fake_base = TorchEncoderStandIn()
    monkeypatch.setattr(embedder_module, "_load_encoder_cached", lambda model_id: fake_base)
    monkeypatch.setattr(embedder_onnx, "runtime_available", lambda: False)
    assert load_encoder(None, runtime="auto", cache_dir=tmp_path) is fake_base
    assert "onnxruntime is not installed" in fake_base.fallback_reason

    embedder_module._RUNTIME_ENCODERS.clear()
    monkeypatch.setattr(embedder_onnx, "runtime_available", lambda: True)
    # object() is not a sentence-transformers pipeline: the export is refused, auto keeps PyTorch ...
    assert load_encoder(None, runtime="auto", cache_dir=tmp_path) is fake_base
    assert "ONNX Runtime unusable" in fake_base.fallback_reason
    # ... and an explicit onnx runtime says why it cannot run.
    embedder_module._RUNTIME_ENCODERS.clear()
    with pytest.raises(ModelMissingError, match="ONNX Runtime"):
        load_encoder(None, runtime="onnx", cache_dir=tmp_path)


def test_only_mean_pooling_pipelines_are_exported() -> None:
    class Transformer:
        auto_model = object()

    class Pooling:
        def __init__(self, mode: str) -> None:
            self.mode = mode

        def get_config_dict(self) -> dict[str, str]:
            return {"pooling_mode": self.mode}

    class Dense:
        pass

    assert embedder_onnx.mean_pooled_transformer([Transformer(), Pooling("mean")]) is Transformer.auto_model
    with pytest.raises(ModelMissingError, match="pooling"):
        embedder_onnx.mean_pooled_transformer([Transformer(), Pooling("cls")])
    with pytest.raises(ModelMissingError, match="mean-pooling models only"):
        embedder_onnx.mean_pooled_transformer([Transformer(), Pooling("mean"), Dense()])

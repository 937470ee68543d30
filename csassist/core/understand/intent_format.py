"""How an intent model is stored: format 2 directories (and the format-1 layouts still read).

Kept apart from :mod:`csassist.core.understand.intent` (the model types and how they predict) because
reading and writing is a job of its own -- which files, which encoder is bundled or referenced, which
older layouts are still accepted, and the clear errors when a directory cannot be used.

Format 2 (a directory): ``meta.json`` (format, labels, threshold, model id, encoder spec, training
report) + ``head.npz`` (``coef`` ``(n_labels, dim)``, ``intercept``) + optional ``encoder/`` (a
transformers directory) + optional ``second.npz`` (a fine-tuned model's second opinion; its embedder
id and weight are in ``meta.json["second_opinion"]``).  Format 1 directories (the old index head, and
the old fine-tuned layout with ``head.pt``) are read too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.atomic import atomic_directory
from csassist.core.errors import ModelMissingError
from csassist.core.knowledge.embedder import Encoder
from csassist.core.understand.intent import (
    ORIGIN_INDEX,
    ORIGIN_STORE,
    IntentModel,
    LinearHead,
    SecondOpinion,
    is_reference,
)

FORMAT = 2

# ------------------------------------------------------------------------------------------ saving


def write_model(model: IntentModel, directory: Path) -> None:
    """Write ``model`` in format 2 into an existing (temporary) ``directory``.

    The encoder is bundled under ``encoder/`` when it is not the configured embedder (a fine-tuned
    body); otherwise only its id is stored and loading checks it.
    """
    from csassist.core.understand.intent_encoder import TransformerEncoder

    encoder = model.encoder
    spec: dict[str, Any] = {"id": encoder.model_id, "dimension": encoder.dimension, "bundled": False}
    if isinstance(encoder, TransformerEncoder):
        encoder.save(directory / "encoder")
        spec.update({"bundled": True, "max_length": encoder.max_length, "normalize": encoder.normalize})
    elif not is_reference(encoder):
        raise ModelMissingError(f"cannot save an intent model whose encoder is a {type(encoder).__name__}")
    np.savez(directory / "head.npz", coef=model.head.coef, intercept=model.head.intercept)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "model_id": model.model_id,
        "labels": list(model.head.labels),
        "threshold": float(model.threshold),
        "encoder": spec,
        "report": model.report,
    }
    second = model.second_opinion
    if second is not None:
        if not is_reference(second.encoder):
            raise ModelMissingError("a second opinion must read the configured embedder, not a bundled encoder")
        np.savez(directory / "second.npz", coef=second.head.coef, intercept=second.head.intercept)
        meta["second_opinion"] = {"encoder": second.encoder.model_id, "dimension": second.encoder.dimension,
                                  "weight": float(second.weight)}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")


def save_model(model: IntentModel, directory: Path) -> None:
    """Replace ``directory`` with ``model`` atomically (the index head lives at ``<index>/intent``)."""
    with atomic_directory(Path(directory)) as tmp:
        write_model(model, tmp)


# ------------------------------------------------------------------------------------------ loading


def read_model(
    directory: Path, encoder: Encoder | None = None, *, origin: str = ORIGIN_INDEX, version: str | None = None
) -> IntentModel:
    """Load an intent model directory (format 2, or either format-1 layout).

    ``encoder`` is the configured embedder; a model that references another embedder is refused with
    :class:`ModelMissingError` (its head would read foreign vectors).  When ``encoder`` is ``None``
    the referenced embedder is loaded.
    """
    directory = Path(directory)
    meta_path = directory / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"{directory}: intent model unreadable ({exc}); run `csassist index`") from exc
    if not isinstance(meta, dict):
        raise ModelMissingError(f"{meta_path}: not an intent model; run `csassist index`")
    fmt = meta.get("format")
    if fmt == 1 and (directory / "head.pt").is_file():
        return _read_legacy_finetuned(directory, meta, version)
    if fmt not in (1, FORMAT):
        raise ModelMissingError(f"{meta_path}: unknown intent model format {fmt!r}; run `csassist index`")
    report = dict(meta.get("report") or {})
    spec = meta.get("encoder") or {"id": report.get("encoder", ""), "bundled": False}
    try:
        arrays = np.load(directory / "head.npz")
        head = LinearHead(
            tuple(str(label) for label in meta["labels"]),
            np.asarray(arrays["coef"], dtype=np.float32),
            np.asarray(arrays["intercept"], dtype=np.float32),
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelMissingError(f"{directory}: intent head unreadable ({exc}); run `csassist index`") from exc
    model_id = str(meta.get("model_id") or report.get("model_id") or "head")
    if spec.get("bundled"):
        from csassist.core.understand.intent_encoder import DEFAULT_MAX_LENGTH, TransformerEncoder

        body: Encoder = TransformerEncoder.load(
            directory / "encoder",
            str(spec.get("id") or model_id),
            max_length=int(spec.get("max_length") or DEFAULT_MAX_LENGTH),
            normalize=bool(spec.get("normalize", False)),
        )
    else:
        body = _referenced_encoder(directory, str(spec.get("id") or ""), encoder)
    threshold = _finite(meta.get("threshold"))
    second = _read_second_opinion(directory, meta, head.labels, encoder)
    return IntentModel(body, head, threshold, model_id, origin=origin, version=version, report=report,
                       second_opinion=second)


def _read_second_opinion(
    directory: Path, meta: dict[str, Any], labels: tuple[str, ...], encoder: Encoder | None
) -> SecondOpinion | None:
    """The saved second opinion, read with the configured embedder (refused, like a head, when it is another)."""
    spec = meta.get("second_opinion")
    if not spec:
        return None
    try:
        arrays = np.load(directory / "second.npz")
        head = LinearHead(labels, np.asarray(arrays["coef"], dtype=np.float32),
                          np.asarray(arrays["intercept"], dtype=np.float32))
        weight = float(spec["weight"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelMissingError(f"{directory}: second-opinion head unreadable ({exc})") from exc
    body = _referenced_encoder(directory, str(spec.get("encoder") or ""), encoder, what="its second-opinion head",
                               fix="run `csassist finetune --intents` again, or `csassist finetune --rollback --rollback-target intent`")
    return SecondOpinion(body, head, weight)


def _referenced_encoder(directory: Path, wanted: str, encoder: Encoder | None, *, what: str = "the intent head",
                        fix: str = "run `csassist index` to refit it") -> Encoder:
    """The configured embedder, checked against the one ``what`` was fitted on."""
    if encoder is None:
        from csassist.core.knowledge.embedder import DEFAULT_EMBEDDER, load_encoder

        encoder = load_encoder(None if wanted in ("", DEFAULT_EMBEDDER) else wanted)
    if wanted and encoder.model_id != wanted:
        raise ModelMissingError(
            f"{directory}: {what} was fitted with embedder {wanted!r}, not {encoder.model_id!r}; {fix}"
        )
    return encoder


def _read_legacy_finetuned(directory: Path, meta: dict[str, Any], version: str | None) -> IntentModel:
    """The format-1 fine-tuned layout: ``encoder/`` + ``head.pt`` (a torch ``nn.Linear`` state dict)."""
    import torch

    from csassist.core.understand.intent_encoder import TransformerEncoder

    name = version or directory.name
    try:
        state = torch.load(directory / "head.pt", map_location="cpu", weights_only=True)
        head = LinearHead(
            tuple(str(label) for label in meta["labels"]),
            state["weight"].float().numpy(),
            state["bias"].float().numpy(),
        )
    except (OSError, RuntimeError, KeyError) as exc:
        raise ModelMissingError(f"{directory}: fine-tuned intent model unreadable ({exc})") from exc
    body = TransformerEncoder.load(directory / "encoder", f"finetuned:{name}", max_length=int(meta.get("max_length", 64)))
    report = {"kind": "finetuned", "base": meta.get("base", "")}
    return IntentModel(body, head, _finite(meta.get("threshold")), f"finetuned:{name}", ORIGIN_STORE, name, report)


def _finite(value: Any, default: float = 0.5) -> float:
    """A finite float threshold (a corrupt value must not make everything out of scope)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def load_head(head_dir: Path, encoder: Encoder | None = None) -> IntentModel:
    """Load the index head saved by ``csassist index``; the encoder must be the one it was fitted with."""
    return read_model(head_dir, encoder, origin=ORIGIN_INDEX)


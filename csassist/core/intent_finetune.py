"""Full fine-tuning of the intent encoder, the versioned model store, and intent evaluation.

Why a separate path from the head: the frozen-embedding head is good (~93 % on BANKING77) but the
encoder itself never sees the task.  Fine-tuning every layer with a mean-pooling + linear head
(the sentence-transformers pooling the model was pre-trained with, so training starts from good
sentence vectors) is the accurate path.  The recipe: AdamW with weight decay (no decay on biases
and LayerNorm), linear warmup then cosine decay, dropout before the head, label smoothing, early
stopping on a validation split (carved from train, stratified, when none is given), optional
freezing of the embeddings or the lowest N layers, and a fixed seed.

Models are stored as versioned directories ``v0001-<timestamp>/`` under
``paths.intent_models_dir()`` (encoder + tokenizer + head + labels + threshold + metrics.json).
A ``current`` pointer file (written atomically) names the promoted one and ``previous`` the one
before it, so ``csassist finetune --rollback --rollback-target intent`` is one pointer swap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csassist import paths
from csassist.core.atomic import atomic_write_text
from csassist.core.errors import CsassistError, ModelMissingError
from csassist.core.intent import clean_text, empty_prediction, prediction_from_probs
from csassist.core.types import IntentPrediction

MODEL_FORMAT = 1
CURRENT = "current"
PREVIOUS = "previous"


# ------------------------------------------------------------------------------------------ model store


def _store(root: Path | None = None) -> Path:
    """The directory holding versioned intent models."""
    return Path(root) if root else paths.intent_models_dir()


def _read_pointer(root: Path, name: str) -> Path | None:
    """The model directory a pointer file names, if both exist."""
    pointer = root / name
    if not pointer.is_file():
        return None
    target = pointer.read_text(encoding="utf-8").strip()
    path = root / target
    return path if target and (path / "meta.json").is_file() else None


def current_model_dir(root: Path | None = None) -> Path | None:
    """The promoted fine-tuned model directory, or ``None`` when there is none."""
    return _read_pointer(_store(root), CURRENT)


def previous_model_dir(root: Path | None = None) -> Path | None:
    """The model that was promoted before the current one (the rollback target)."""
    return _read_pointer(_store(root), PREVIOUS)


def next_version_dir(root: Path | None = None, now: datetime | None = None) -> Path:
    """``vNNNN-<UTC timestamp>``, one above the highest existing version."""
    store = _store(root)
    highest = 0
    if store.is_dir():
        for child in store.iterdir():
            name = child.name
            if name.startswith("v") and name[1:5].isdigit():
                highest = max(highest, int(name[1:5]))
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return store / f"v{highest + 1:04d}-{stamp}"


def promote(model_dir: Path, root: Path | None = None) -> None:
    """Make ``model_dir`` the intent model the app uses; the old current becomes ``previous``."""
    store = _store(root)
    old = current_model_dir(store)
    if old is not None and old.resolve() != Path(model_dir).resolve():
        atomic_write_text(store / PREVIOUS, old.name + "\n")
    atomic_write_text(store / CURRENT, Path(model_dir).name + "\n")


def rollback(root: Path | None = None) -> tuple[Path | None, Path | None]:
    """Swap ``current`` and ``previous``; returns ``(now_current, now_previous)``.

    Rolling back the only promoted model removes the pointer, so the app returns to the index's head.
    """
    store = _store(root)
    cur, prev = current_model_dir(store), previous_model_dir(store)
    if cur is None:
        raise CsassistError(f"no promoted intent model in {store}: nothing to roll back")
    if prev is None:
        (store / CURRENT).unlink()
        return None, cur
    atomic_write_text(store / CURRENT, prev.name + "\n")
    atomic_write_text(store / PREVIOUS, cur.name + "\n")
    return prev, cur


# ------------------------------------------------------------------------------------------ the network


def _build_classifier(encoder: Any, n_labels: int, dropout: float) -> Any:
    """Mean pooling over the encoder's token states, dropout, then a linear layer."""
    import torch
    from torch import nn

    class MeanPoolClassifier(nn.Module):
        """Encoder -> masked mean -> dropout -> linear; logits over the intents."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(encoder.config.hidden_size, n_labels)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    return MeanPoolClassifier()


class FineTunedIntentModel:
    """A fine-tuned encoder + head loaded from a versioned directory; implements ``IntentModel``."""

    def __init__(self, model_dir: Path, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from csassist.core.embedder import configure_threads

        configure_threads(threads)
        self.model_dir = Path(model_dir)
        try:
            meta = json.loads((self.model_dir / "meta.json").read_text(encoding="utf-8"))
            self.labels: list[str] = list(meta["labels"])
            self.threshold = float(meta["threshold"])
            self.max_length = int(meta.get("max_length", 64))
            tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir / "encoder"))
            encoder = AutoModel.from_pretrained(str(self.model_dir / "encoder"))
            net = _build_classifier(encoder, len(self.labels), 0.0)
            state = torch.load(self.model_dir / "head.pt", map_location="cpu", weights_only=True)
            net.head.load_state_dict(state)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelMissingError(
                f"{self.model_dir}: fine-tuned intent model unreadable ({exc}); "
                "run `csassist finetune --rollback --rollback-target intent`"
            ) from exc
        if not math.isfinite(self.threshold):
            self.threshold = 0.5
        net.eval()
        self.tokenizer = tokenizer
        self.net = net
        self.model_id = f"finetuned:{self.model_dir.name}"
        import threading

        self._lock = threading.Lock()

    def predict(self, text: str) -> IntentPrediction:
        """Classify one message."""
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: Sequence[str], batch_size: int = 64) -> list[IntentPrediction]:
        """Classify many messages; empty ones are out of scope with no candidates."""
        import torch

        cleaned = [clean_text(t) for t in texts]
        out = [empty_prediction(self.threshold, self.model_id) for _ in cleaned]
        todo = [i for i, t in enumerate(cleaned) if t]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            enc = self.tokenizer(
                [cleaned[i] for i in chunk], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            )
            with self._lock, torch.inference_mode():
                logits = self.net(enc["input_ids"], enc["attention_mask"])
            probs = torch.softmax(logits.float(), dim=-1).numpy()
            for row, i in enumerate(chunk):
                out[i] = prediction_from_probs(probs[row], self.labels, self.threshold, self.model_id)
        return out


def load_finetuned(model_dir: Path) -> FineTunedIntentModel:
    """Load a fine-tuned intent model directory (raises :class:`ModelMissingError` with advice)."""
    return FineTunedIntentModel(model_dir)

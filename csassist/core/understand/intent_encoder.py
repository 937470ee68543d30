"""A fine-tuned transformer used as a sentence encoder: the body of a fine-tuned intent model.

Why not :class:`~csassist.core.knowledge.embedder.SentenceEncoder`: a fine-tuned body is trained
with masked mean pooling and *no* normalisation (the linear head learned on those raw vectors), at a
short ``max_length`` (64 tokens: customer messages are short, and padding costs time).  This class
reproduces exactly that forward pass, so the head sees at inference what it saw in training, and it
saves/loads as a plain transformers directory (``config.json`` + safetensors + tokenizer).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csassist.core.errors import ModelMissingError

DEFAULT_MAX_LENGTH = 64


def mean_pool(states: Any, attention_mask: Any) -> Any:
    """Masked mean over token states (the pooling all-MiniLM-L6-v2 was pre-trained with)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TransformerEncoder:
    """Implements the ``Encoder`` protocol over a transformers model: tokenise, encode, mean-pool.

    ``normalize`` is off for fine-tuned bodies (see the module docstring).  Thread-safe: torch
    modules are not re-entrant, so calls are serialised.
    """

    def __init__(
        self, model: Any, tokenizer: Any, model_id: str, *, max_length: int = DEFAULT_MAX_LENGTH,
        normalize: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_length = int(max_length)
        self.normalize = bool(normalize)
        self.dimension = int(model.config.hidden_size)
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, directory: Path, model_id: str, *, max_length: int = DEFAULT_MAX_LENGTH, normalize: bool = False
    ) -> TransformerEncoder:
        """Load a saved body; :class:`ModelMissingError` names the directory when it is unreadable."""
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory))
            model = AutoModel.from_pretrained(str(directory))
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"{directory}: intent encoder unreadable ({exc})") from exc
        model.eval()
        return cls(model, tokenizer, model_id, max_length=max_length, normalize=normalize)

    def save(self, directory: Path) -> None:
        """Write the body and its tokenizer as a transformers directory."""
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Pooled vectors, float32, shape ``(len(texts), dimension)``; length-sorted batches pad less."""
        import torch

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                    return_tensors="pt",
                )
                states = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
                pooled = mean_pool(states, enc["attention_mask"]).float()
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.numpy()
        return out

"""The network side of intent fine-tuning: the classifier, its batches and its forward passes.

Kept apart from the training loop (:mod:`csassist.core.learn.intent_finetune`) because these are the
pieces a reader checks one at a time -- how a batch is bucketed and padded, what the head reads, how
the head is initialised from a linear probe (LP-FT) -- while the loop is about schedules, budgets
and checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from csassist.core.understand.intent_encoder import mean_pool

#: The linear probe's inverse regularisation and iteration cap (a starting point, not the final head).
PROBE_C = 1.0
PROBE_ITERATIONS = 300


def build_classifier(encoder: Any, n_labels: int, dropout: float) -> Any:
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
            return self.head(self.dropout(mean_pool(states, attention_mask)))

    return MeanPoolClassifier()




def predict_probs(net: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """Softmax probabilities for ``texts`` with the network in eval mode (restored to train after)."""
    import torch

    return batched(net, tokenizer, texts, max_length, lambda ids, mask: torch.softmax(net(ids, mask).float(), -1),
                    batch_size)


def pooled_vectors(net: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """The encoder's mean-pooled vectors for ``texts`` (what the head reads), in eval mode."""
    return batched(
        net, tokenizer, texts, max_length,
        lambda ids, mask: mean_pool(net.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask).float(),
        batch_size,
    )


def batched(net: Any, tokenizer: Any, texts: Sequence[str], max_length: int, forward: Callable[[Any, Any], Any],
             batch_size: int) -> np.ndarray:
    """``forward(input_ids, attention_mask)`` over length-sorted batches of ``texts``, rows in input order."""
    import torch

    was_training = net.training
    net.eval()
    chunks = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length-sorted batches pad less
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            chunks.append((idx, forward(enc["input_ids"], enc["attention_mask"]).numpy()))
    if was_training:
        net.train()
    width = chunks[0][1].shape[1] if chunks else 0
    out = np.zeros((len(texts), width), dtype=np.float64)
    for idx, rows in chunks:
        out[idx] = rows
    return out


def probe_head(net: Any, tokenizer: Any, texts: Sequence[str], targets: np.ndarray, max_length: int,
                seed: int) -> dict[str, float]:
    """Set ``net.head`` to a logistic regression fitted on the frozen encoder's pooled vectors (LP-FT)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    vectors = pooled_vectors(net, tokenizer, texts, max_length)
    probe = LogisticRegression(C=PROBE_C, max_iter=PROBE_ITERATIONS, random_state=seed).fit(vectors, targets)
    weight = np.zeros(tuple(net.head.weight.shape), dtype=np.float32)
    bias = np.full(net.head.bias.shape[0], -10.0, dtype=np.float32)  # a class the probe never saw stays unlikely
    classes = probe.classes_.astype(int)
    if len(classes) == 2:  # binary: scikit-learn keeps one row; the softmax equivalent is +-half of it
        weight[classes[1]], weight[classes[0]] = probe.coef_[0] / 2, -probe.coef_[0] / 2
        bias[classes[1]], bias[classes[0]] = probe.intercept_[0] / 2, -probe.intercept_[0] / 2
    else:
        weight[classes], bias[classes] = probe.coef_, probe.intercept_
    with torch.no_grad():
        net.head.weight.copy_(torch.from_numpy(weight))
        net.head.bias.copy_(torch.from_numpy(bias))
    return {"probe_seconds": round(time.perf_counter() - started, 1),
            "probe_train_accuracy": round(float(probe.score(vectors, targets)), 4)}


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, gen: Any) -> list[list[int]]:
    """Shuffled batches of similar length: pools of 50 batches are sorted by length, then batch order is shuffled.

    Padding to the longest text in a random batch roughly doubles the tokens on BANKING77; bucketing
    keeps the randomness of SGD while cutting the compute about in half.
    """
    import torch

    perm = torch.randperm(len(lengths), generator=gen).tolist()
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(perm), pool):
        chunk = sorted(perm[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-pad token id lists into ``(input_ids, attention_mask)`` tensors."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask

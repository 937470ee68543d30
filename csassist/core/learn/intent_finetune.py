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
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from csassist import paths
from csassist.core.atomic import atomic_directory, atomic_write_text
from csassist.core.errors import CsassistError, DataError, ModelMissingError
from csassist.core.types import IntentExample, IntentPrediction
from csassist.core.understand.intent import choose_threshold, clean_text, empty_prediction, prediction_from_probs
from csassist.core.understand.intent_data import OOS_LABEL, check_trainable

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

        from csassist.core.knowledge.embedder import configure_threads

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


# ------------------------------------------------------------------------------------------ training


@dataclass
class FinetuneConfig:
    """Every knob of the fine-tuning recipe (defaults sized for MiniLM-L6 on a small CPU)."""

    base: str | None = None  # encoder directory or name; None -> the bundled all-MiniLM-L6-v2
    epochs: int = 8
    lr: float = 1.5e-4
    head_lr: float | None = None  # None -> 10x lr: the head starts from scratch, the encoder does not
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps
    schedule: str = "cosine"  # cosine | linear decay after warmup
    dropout: float = 0.1
    label_smoothing: float = 0.1
    freeze: str = "none"  # none | embeddings | N (embeddings + lowest N layers)
    val_split: float = 0.1
    patience: int = 2
    seed: int = 13
    max_steps: int | None = None
    max_length: int = 64
    evals_per_epoch: int = 1
    threads: int | None = None
    #: Wall-clock training budget: after measuring step times, the schedule is resized so that the
    #: cosine decay ends (and training stops) inside it.  None = no budget.
    time_budget_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[dict[str, Any]], None]


def split_validation(
    examples: Sequence[IntentExample], share: float, seed: int
) -> tuple[list[IntentExample], list[IntentExample]]:
    """Stratified carve-out: ``share`` of each intent (at least 1 when it has 2+ examples) goes to validation."""
    rng = random.Random(seed)
    by_label: dict[str, list[IntentExample]] = {}
    for e in examples:
        by_label.setdefault(e.intent, []).append(e)
    train: list[IntentExample] = []
    val: list[IntentExample] = []
    for label in sorted(by_label):
        items = list(by_label[label])
        rng.shuffle(items)
        n_val = 0 if len(items) < 2 else min(len(items) - 1, max(1, round(len(items) * share)))
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return train, val


def _freeze(encoder: Any, how: str) -> int:
    """Apply ``--freeze``; return how many encoder layers stay trainable."""
    layers = encoder.encoder.layer if hasattr(encoder, "encoder") else []
    how = (how or "none").strip().lower()
    if how == "none":
        return len(layers)
    if how == "embeddings":
        n = 0
    elif how.isdigit():
        n = int(how)
        if n > len(layers):
            raise DataError(f"--freeze {n}: the encoder has only {len(layers)} layers")
    else:
        raise DataError(f"--freeze must be none, embeddings or a number of layers, not {how!r}")
    for p in encoder.embeddings.parameters():
        p.requires_grad = False
    for layer in list(layers)[:n]:
        for p in layer.parameters():
            p.requires_grad = False
    return len(layers) - n


def _lr_lambda(warmup: float, plan: dict[str, int], schedule: str) -> Callable[[int], float]:
    """Linear warmup (``warmup`` share of the steps) to 1, then cosine (or linear) decay to 0 at
    ``plan["total"]``, which a time budget may resize while training."""

    def f(step: int) -> float:
        warmup_steps = int(plan["total"] * warmup)
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, plan["total"] - warmup_steps)
        progress = min(1.0, progress)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def _predict_probs(net: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """Softmax probabilities for ``texts`` with the network in eval mode (restored to train after)."""
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
            chunks.append((idx, torch.softmax(net(enc["input_ids"], enc["attention_mask"]).float(), -1).numpy()))
    if was_training:
        net.train()
    n_labels = chunks[0][1].shape[1] if chunks else 0
    out = np.zeros((len(texts), n_labels), dtype=np.float64)
    for idx, probs in chunks:
        out[idx] = probs
    return out


def _resize_plan(
    plan: dict[str, int], step: int, loop_s: float, elapsed_s: float, budget_s: float, steps_per_epoch: int,
    evals_per_epoch: int, eval_s: float,
) -> None:
    """Shrink (or regrow, up to the configured epochs) the schedule so training ends within the budget."""
    per_step = loop_s / max(1, step)
    remaining = budget_s - elapsed_s - 20.0  # keep time for the final evaluation and saving
    evals_left = lambda steps: (steps / max(1, steps_per_epoch)) * evals_per_epoch * eval_s  # noqa: E731
    steps_left = max(0, int(remaining / per_step))
    while steps_left > 0 and steps_left * per_step + evals_left(steps_left) > remaining:
        steps_left = int(steps_left * 0.95)
    wanted = step + max(1, steps_left)
    ceiling = plan.setdefault("ceiling", plan["total"])
    plan["total"] = max(step + 1, min(ceiling, wanted))


def _length_bucketed_batches(lengths: Sequence[int], batch_size: int, gen: Any) -> list[list[int]]:
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


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-pad token id lists into ``(input_ids, attention_mask)`` tensors."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def finetune_intents(
    train_examples: Sequence[IntentExample],
    val_examples: Sequence[IntentExample] | None = None,
    config: FinetuneConfig | None = None,
    *,
    out_root: Path | None = None,
    progress: ProgressCallback | None = None,
    promote_model: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Fine-tune the encoder + head, save a versioned model directory, and (normally) promote it.

    ``progress`` receives dicts (``{"event": "step", "step", "total_steps", "epoch", "loss", "lr"}``,
    ``{"event": "eval", "epoch", "val_accuracy"}``) so a CLI can draw a bar without core knowing
    about it.  Returns the report that is also written to ``metrics.json``.  A model that is worse on
    this validation set than the currently promoted one is saved but not promoted unless ``force``.
    """
    import torch
    from torch import nn
    from transformers import AutoModel, AutoTokenizer

    from csassist.core.knowledge.embedder import configure_threads, resolve_embedder_path

    cfg = config or FinetuneConfig()
    configure_threads(cfg.threads)
    started = time.perf_counter()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    counts = check_trainable(train_examples)
    labels = sorted(counts)
    index = {label: i for i, label in enumerate(labels)}
    train_in = [e for e in train_examples if e.intent != OOS_LABEL]
    train_oos = [e for e in train_examples if e.intent == OOS_LABEL]
    if val_examples is None:
        train_in, val_in = split_validation(train_in, cfg.val_split, cfg.seed)
        keep_oos, val_oos = split_validation(train_oos, 0.5, cfg.seed) if len(train_oos) > 1 else (train_oos, [])
        del keep_oos  # OOS rows never train the classifier; they only tune the threshold
        val_source = f"carved {cfg.val_split:.0%} from train (stratified)"
    else:
        val_in = [e for e in val_examples if e.intent != OOS_LABEL]
        val_oos = [e for e in val_examples if e.intent == OOS_LABEL] + train_oos
        val_source = "given"
    unknown_val = sorted({e.intent for e in val_in if e.intent not in index})
    val_in = [e for e in val_in if e.intent in index]
    if not train_in:
        raise DataError("no training examples left after carving the validation split")

    base_id, base_path = resolve_embedder_path(cfg.base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_path)
        encoder = AutoModel.from_pretrained(base_path)
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"cannot load base encoder {base_id!r} from {base_path}: {exc}") from exc
    trainable_layers = _freeze(encoder, cfg.freeze)
    net = _build_classifier(encoder, len(labels), cfg.dropout)
    net.train()

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    enc_params = [(n, p) for n, p in net.encoder.named_parameters() if p.requires_grad]
    head_lr = cfg.head_lr if cfg.head_lr is not None else cfg.lr * 10
    groups = [
        {"params": [p for n, p in enc_params if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay, "lr": cfg.lr},
        {"params": [p for n, p in enc_params if n.endswith(no_decay)], "weight_decay": 0.0, "lr": cfg.lr},
        {"params": [net.head.weight], "weight_decay": cfg.weight_decay, "lr": head_lr},
        {"params": [net.head.bias], "weight_decay": 0.0, "lr": head_lr},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr)
    batch_size = max(1, min(cfg.batch_size, len(train_in)))
    steps_per_epoch = math.ceil(len(train_in) / batch_size)
    total_steps = steps_per_epoch * max(1, cfg.epochs)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    plan = {"total": total_steps}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.warmup, plan, cfg.schedule))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    texts = [clean_text(e.text) for e in train_in]
    targets = torch.tensor([index[e.intent] for e in train_in], dtype=torch.long)
    val_texts = [clean_text(e.text) for e in val_in]
    val_y = np.array([index[e.intent] for e in val_in], dtype=np.int64)
    gen = torch.Generator().manual_seed(cfg.seed)
    token_ids = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    lengths = [len(t) for t in token_ids]
    pad_id = tokenizer.pad_token_id or 0
    eval_points = {
        min(steps_per_epoch, round(steps_per_epoch * (k + 1) / max(1, cfg.evals_per_epoch)))
        for k in range(max(1, cfg.evals_per_epoch))
    }

    eval_seconds = 0.0
    loop_started = time.perf_counter()
    best_acc, best_state, best_step, bad_evals = -1.0, None, 0, 0
    history: list[dict[str, Any]] = []
    step, stopped_early, last_loss = 0, False, float("nan")
    epoch = 0
    for epoch in range(1, max(1, cfg.epochs) + 1):
        batches = _length_bucketed_batches(lengths, batch_size, gen)
        for b, idx in enumerate(batches):
            ids, mask = _pad([token_ids[i] for i in idx], pad_id)
            logits = net(ids, mask)
            loss = loss_fn(logits, targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            last_loss = float(loss.detach())
            if not math.isfinite(last_loss):
                raise DataError(f"training diverged at step {step} (loss {last_loss}); lower --lr")
            if cfg.time_budget_s and step >= 10 and step % 10 == 0:
                _resize_plan(plan, step, time.perf_counter() - loop_started, time.perf_counter() - started,
                             cfg.time_budget_s, steps_per_epoch, len(eval_points), eval_seconds)
            if progress:
                progress({"event": "step", "step": step, "total_steps": plan["total"], "epoch": epoch,
                          "loss": last_loss, "lr": scheduler.get_last_lr()[0]})
            at_eval = (b + 1) in eval_points or step >= plan["total"]
            if at_eval:
                if val_texts:
                    e0 = time.perf_counter()
                    probs = _predict_probs(net, tokenizer, val_texts, cfg.max_length)
                    acc = float(np.mean(probs.argmax(1) == val_y))
                    eval_seconds = time.perf_counter() - e0
                    loop_started += eval_seconds  # step-time estimates exclude evaluation
                else:
                    acc = -last_loss  # no validation data: track training loss instead
                history.append({"step": step, "epoch": epoch, "val_accuracy": acc, "loss": last_loss,
                                "seconds": round(time.perf_counter() - started, 1)})
                if progress:
                    progress({"event": "eval", "step": step, "epoch": epoch, "val_accuracy": acc})
                if acc > best_acc + 1e-9:
                    best_acc, best_step, bad_evals = acc, step, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad_evals += 1
                    if bad_evals >= max(1, cfg.patience):
                        stopped_early = True
                        break
            if step >= plan["total"]:
                break
        if stopped_early or step >= plan["total"]:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    train_seconds = time.perf_counter() - started

    # Threshold and metrics on validation data.
    val_probs = _predict_probs(net, tokenizer, val_texts, cfg.max_length) if val_texts else np.zeros((0, len(labels)))
    oos_texts = [clean_text(e.text) for e in val_oos]
    oos_probs = _predict_probs(net, tokenizer, oos_texts, cfg.max_length) if oos_texts else np.zeros((0, len(labels)))
    correct = val_probs.argmax(1) == val_y if len(val_probs) else np.zeros(0, dtype=bool)
    threshold, achieved = choose_threshold(val_probs.max(1) if len(val_probs) else np.zeros(0), correct,
                                           oos_probs.max(1) if len(oos_probs) else np.zeros(0), len(labels))
    per_intent: dict[str, Any] = {}
    macro_f1 = None
    if len(val_probs):
        from sklearn.metrics import classification_report, f1_score

        pred = val_probs.argmax(1)
        present = sorted(set(val_y.tolist()) | set(pred.tolist()))
        rep = classification_report(val_y, pred, labels=present, target_names=[labels[i] for i in present],
                                    output_dict=True, zero_division=0)
        per_intent = {k: v for k, v in rep.items() if k in index}
        macro_f1 = float(f1_score(val_y, pred, average="macro", zero_division=0))

    store = _store(out_root)
    version_dir = next_version_dir(store)
    report: dict[str, Any] = {
        "kind": "finetuned",
        "version": version_dir.name,
        "base": base_id,
        "labels": len(labels),
        "train_examples": len(train_in),
        "val_examples": len(val_in),
        "val_oos_examples": len(val_oos),
        "val_source": val_source,
        "unknown_val_labels": unknown_val,
        "val_accuracy": float(np.mean(correct)) if len(correct) else None,
        "val_macro_f1": macro_f1,
        "threshold": float(threshold),
        "in_scope_accuracy": achieved["in_scope_accuracy"],
        "oos_recall": achieved["oos_recall"],
        "best_step": best_step,
        "steps": step,
        "planned_steps": plan["total"],
        "epochs_run": epoch,
        "stopped_early": stopped_early,
        "final_loss": last_loss,
        "train_seconds": round(train_seconds, 1),
        "trainable_layers": trainable_layers,
        "history": history,
        "per_intent": per_intent,
        "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
    }
    meta = {"format": MODEL_FORMAT, "labels": labels, "threshold": float(threshold), "max_length": cfg.max_length,
            "base": base_id}
    with atomic_directory(version_dir) as tmp:
        net.encoder.save_pretrained(str(tmp / "encoder"))
        tokenizer.save_pretrained(str(tmp / "encoder"))
        torch.save(net.head.state_dict(), tmp / "head.pt")
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(report, indent=2), encoding="utf-8")

    report["model_dir"] = str(version_dir)
    report["promoted"] = False
    if promote_model:
        current = current_model_dir(store)
        report["previous_val_accuracy"] = None
        better = True
        if current is not None and val_texts and not force:
            old = FineTunedIntentModel(current)
            old_preds = old.predict_batch(val_texts)
            old_acc = float(np.mean([p.top[0].intent == labels[y] if p.top else False
                                     for p, y in zip(old_preds, val_y, strict=True)]))
            report["previous_val_accuracy"] = old_acc
            better = report["val_accuracy"] is not None and report["val_accuracy"] >= old_acc
        if better or force:
            promote(version_dir, store)
            report["promoted"] = True
    return report


# ------------------------------------------------------------------------------------------ evaluation


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) or None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def evaluate_intents(model: Any, examples: Sequence[IntentExample], *, latency_samples: int = 200) -> dict[str, Any]:
    """Accuracy, macro-F1, per-intent P/R/F1, worst confusions, OOS recall and latency of ``model``.

    Rows whose label the model does not know are counted as errors and listed under
    ``unknown_labels`` (never a crash).  Latency is measured on single-message ``predict`` calls.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    if not examples:
        raise DataError("no evaluation examples")
    known = set(getattr(model, "labels", []) or [])
    texts = [e.text for e in examples]
    t0 = time.perf_counter()
    preds = model.predict_batch(texts)
    batch_seconds = time.perf_counter() - t0
    gold = [e.intent for e in examples]
    in_idx = [i for i, g in enumerate(gold) if g != OOS_LABEL]
    oos_idx = [i for i, g in enumerate(gold) if g == OOS_LABEL]
    top1 = [p.top[0].intent if p.top else "" for p in preds]
    unknown = Counter(gold[i] for i in in_idx if known and gold[i] not in known)

    # Closed-set accuracy (ignoring the OOS threshold) on in-scope rows: the classifier's quality.
    acc = float(np.mean([top1[i] == gold[i] for i in in_idx])) if in_idx else None
    y_true = [gold[i] for i in in_idx]
    y_pred = [top1[i] for i in in_idx]
    names = sorted(set(y_true))
    macro = float(f1_score(y_true, y_pred, labels=names, average="macro", zero_division=0)) if in_idx else None
    per: dict[str, dict[str, float | int]] = {}
    if in_idx:
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=names, zero_division=0)
        per = {n: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k])}
               for k, n in enumerate(names)}
    confusions = Counter((gold[i], top1[i]) for i in in_idx if top1[i] != gold[i])
    worst = [{"gold": g, "predicted": pr or "(none)", "count": c} for (g, pr), c in confusions.most_common(10)]
    oos_recall = float(np.mean([preds[i].out_of_scope for i in oos_idx])) if oos_idx else None
    in_scope_acc = (
        float(np.mean([(not preds[i].out_of_scope) and top1[i] == gold[i] for i in in_idx]))
        if oos_idx and in_idx else None
    )
    # Single-message latency (what the app pays per incoming message).
    sample = [texts[i] for i in range(0, len(texts), max(1, len(texts) // latency_samples))][:latency_samples]
    if sample:
        model.predict(sample[0])  # warm-up
    lat = []
    for t in sample:
        s0 = time.perf_counter()
        model.predict(t)
        lat.append((time.perf_counter() - s0) * 1000)
    return {
        "model": getattr(model, "model_id", ""),
        "examples": len(examples),
        "in_scope_examples": len(in_idx),
        "oos_examples": len(oos_idx),
        "accuracy": acc,
        "macro_f1": macro,
        "oos_recall": oos_recall,
        "in_scope_accuracy": in_scope_acc,
        "threshold": float(getattr(model, "threshold", 0.0)),
        "unknown_labels": dict(unknown),
        "latency_ms_p50": percentile(lat, 50),
        "latency_ms_p95": percentile(lat, 95),
        "batch_ms_per_message": batch_seconds * 1000 / max(1, len(texts)),
        "per_intent": per,
        "worst_confusions": worst,
    }

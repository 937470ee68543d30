"""The learning loop's training: a LoRA adapter (peft) on the generator, trained on sent replies.

AdamW, linear warmup then linear decay, loss on the reply tokens only (prompt tokens are masked with
-100), validation loss a few times per epoch and early stopping with ``patience``; the best adapter
weights are kept.  The loop is a plain torch loop driven by :class:`accelerate.Accelerator`, so the
same code runs on one CPU (a no-op wrapper) and unchanged under ``accelerate launch`` / ``torchrun``
on several GPUs (data-parallel; only the main process evaluates generations and writes files).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from csassist.core.errors import ModelMissingError
from csassist.core.learn.log_pairs import DEFAULT_MIN_PAIRS, Pair

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")

Progress = Callable[[dict[str, Any]], None]


# ---------------------------------------------------------------------------------------- base model
def load_base(base: str | None) -> tuple[Any, Any, str]:
    """Load ``(model, tokenizer, base_id)`` for training, in float32 (LoRA math wants full precision).

    The model is resolved exactly as the app resolves its generator (:func:`csassist.core.reply.models.
    resolve_generator`): empty -> the bundled SmolLM2, converted once to safetensors; a local directory
    or a hub id otherwise.  The adapter is therefore trained on the weights it will be applied to.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from csassist.core.reply.models import resolve_generator

    base_id, source = resolve_generator(base or "")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"cannot load base model {base or base_id!r} from {source}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.float(), tokenizer, base_id


# ------------------------------------------------------------------------------------ tokenisation
def encode_pair(tokenizer: Any, prompt: str, target: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels for one pair: labels are -100 on the prompt, so loss is on the reply only.

    The reply ends with the tokenizer's end-of-turn token so the model learns to stop.  When too long,
    the reply is capped at three quarters of ``max_length`` and the prompt is cut from the *left* (its
    end holds the customer message and the assistant header, which matter most).
    """
    eos = tokenizer.eos_token or ""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(target + eos, add_special_tokens=False)["input_ids"]
    reply_ids = reply_ids[: max(1, (max_length * 3) // 4)]
    room = max_length - len(reply_ids)
    prompt_ids = prompt_ids[-room:] if room > 0 else []
    ids = list(prompt_ids) + list(reply_ids)
    labels = [-100] * len(prompt_ids) + list(reply_ids)
    return ids, labels


def collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch to its longest member (padding is masked out of attention and loss)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


# -------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one fine-tuning run (saved into the adapter's metrics.json)."""

    epochs: int = 1
    lr: float = 3e-4
    batch_size: int = 4
    lora_r: int = 8
    lora_alpha: int | None = None  # None -> 2 * r
    lora_dropout: float = 0.05
    weight_decay: float = 0.01
    warmup: float = 0.1
    patience: int = 2
    evals_per_epoch: int = 4
    max_steps: int | None = None
    max_length: int = 512
    val_loss_cap: int = 64  # validation pairs used for the loss
    gen_eval_cap: int = 8  # validation pairs used for generated-reply metrics (0 = skip)
    max_new_tokens: int = 128
    seed: int = 13
    min_pairs: int = DEFAULT_MIN_PAIRS
    val_split: float = 0.1


# ------------------------------------------------------------------------------------------ training
def _loss_on(model: Any, loader: Any, accelerator: Any) -> float:
    """Mean per-token loss over a loader (token-weighted, gathered across processes)."""
    import torch

    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    with torch.no_grad():
        for batch in loader:
            out = model(**batch)
            tokens = (batch["labels"][:, 1:] != -100).sum()
            total += torch.stack([out.loss.double() * tokens, tokens.double()])
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    return float(total[0] / total[1]) if float(total[1]) > 0 else math.nan


def train_lora(
    model: Any,
    tokenizer: Any,
    train: Sequence[Pair],
    val: Sequence[Pair],
    config: TrainConfig,
    progress: Progress | None = None,
    accelerator: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Attach a LoRA adapter to ``model`` and train it; return the (unwrapped) peft model and metrics.

    Metrics: ``val_loss_before`` (the base model: LoRA starts as an exact no-op), ``val_loss_after``
    (best evaluation), the loss curve, steps, seconds and whether early stopping fired.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    accelerator = accelerator or Accelerator()
    set_seed(config.seed)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha or 2 * config.lora_r,
        lora_dropout=config.lora_dropout,
        target_modules=list(LORA_TARGETS),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    pad_id = int(tokenizer.pad_token_id)
    train_items = [encode_pair(tokenizer, p.prompt, p.target, config.max_length) for p in train]
    val_items = [encode_pair(tokenizer, p.prompt, p.target, config.max_length) for p in val[: config.val_loss_cap]]
    generator = torch.Generator().manual_seed(config.seed)
    train_loader: Any = DataLoader(
        train_items,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda b: collate(b, pad_id),
    )
    val_loader: Any = DataLoader(
        val_items,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        shuffle=False,
        collate_fn=lambda b: collate(b, pad_id),
    )
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_items) / config.batch_size / accelerator.num_processes))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = max(1, min(total_steps, config.max_steps))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * total_steps), total_steps)
    peft_model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        peft_model, optimizer, train_loader, val_loader, scheduler
    )
    eval_every = max(1, min(steps_per_epoch, total_steps) // max(1, config.evals_per_epoch))

    def report(event: dict[str, Any]) -> None:
        if progress is not None and accelerator.is_main_process:
            progress(event)

    started = time.perf_counter()
    report({"phase": "eval", "step": 0, "total": total_steps})
    before = _loss_on(peft_model, val_loader, accelerator)
    best, best_step, bad_evals = before, 0, 0
    best_state = _adapter_state(accelerator.unwrap_model(peft_model))
    curve: list[dict[str, float]] = [{"step": 0, "val_loss": before}]
    step, stopped_early, running = 0, False, math.nan
    peft_model.train()
    while step < total_steps and not stopped_early:
        for batch in train_loader:
            loss = peft_model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            value = float(loss.detach())
            running = value if math.isnan(running) else 0.9 * running + 0.1 * value
            report({"phase": "train", "step": step, "total": total_steps, "loss": running})
            if step % eval_every == 0 or step == total_steps:
                val_loss = _loss_on(peft_model, val_loader, accelerator)
                curve.append({"step": step, "train_loss": running, "val_loss": val_loss})
                report({"phase": "eval", "step": step, "total": total_steps, "loss": running, "val_loss": val_loss})
                if val_loss < best - 1e-6:
                    best, best_step, bad_evals = val_loss, step, 0
                    best_state = _adapter_state(accelerator.unwrap_model(peft_model))
                else:
                    bad_evals += 1
                    if bad_evals >= config.patience:
                        stopped_early = True
                        break
            if step >= total_steps:
                break
    unwrapped = accelerator.unwrap_model(peft_model)
    _load_adapter_state(unwrapped, best_state)
    unwrapped.eval()
    metrics = {
        "val_loss_before": before,
        "val_loss_after": best,
        "best_step": best_step,
        "steps": step,
        "total_steps": total_steps,
        "stopped_early": stopped_early,
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_examples": len(train_items),
        "val_loss_examples": len(val_items),
        "trainable_parameters": sum(p.numel() for p in params),
        "processes": accelerator.num_processes,
        "curve": curve,
    }
    return unwrapped, metrics


def _adapter_state(model: Any) -> dict[str, Any]:
    """A CPU copy of the trainable (LoRA) weights: the best checkpoint kept in memory."""
    return {k: v.detach().cpu().clone() for k, v in model.named_parameters() if v.requires_grad}


def _load_adapter_state(model: Any, state: dict[str, Any]) -> None:
    """Put the kept LoRA weights back."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name].to(param.device))



def multi_process_without_gpu() -> bool:
    """Under ``torchrun``/``accelerate launch`` with no GPU, accelerate needs ``cpu=True`` to use gloo.

    (With GPUs it picks NCCL by itself; on one process ``cpu=False`` keeps CUDA/MPS when present.)
    """
    import os

    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()

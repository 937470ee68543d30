"""Learning from the feedback log: supervised pairs -> LoRA adapter -> before/after check -> promotion.

Why this shape:

* **Data.** Only what an agent actually *sent* is a target: accepted (as-is) and edited outcomes give a
  pair ``(prompt -> final sent text)``.  The prompt is the exact rendered text the generator saw (the
  log stores it, redacted), so training matches inference.  Pairs are deduplicated (same prompt: the
  most recent sent text wins), split train/validation with a fixed seed, and refused with a
  :class:`DataError` below ``min_pairs``.
* **Training.** A LoRA adapter (peft) on the generator; AdamW, linear warmup then linear decay, loss on
  the reply tokens only (prompt tokens are masked with -100), validation loss a few times per epoch and
  early stopping with ``patience``; the best adapter weights are kept.  The loop is a plain torch loop
  driven by :class:`accelerate.Accelerator`, so the same code runs on one CPU (a no-op wrapper) and
  unchanged under ``accelerate launch`` / ``torchrun`` on several GPUs (data-parallel; only the main
  process evaluates generations and writes files).
* **Evaluation.** Before and after: validation loss, and ROUGE-L / embedding cosine of greedy replies
  against the held-out sent texts on a capped number of validation examples (generation is slow on CPU).
* **Promotion rule** (:func:`is_better`): the new adapter is promoted when validation loss went *down*
  and ROUGE-L did not drop by more than ``ROUGE_TOLERANCE`` (0.01 absolute; a few validation examples
  are noisy, so a small dip must not veto a real loss gain, but a visible quality drop does).  With no
  generation examples, loss alone decides.  ``force=True`` promotes regardless.
* **Versions.** Adapters are saved atomically as ``<adapters_dir>/vNNNN-<UTC timestamp>/`` (adapter
  weights, ``metrics.json``, ``data_summary.json``, base model id).  ``current`` names the promoted one
  and ``previous`` the one before it; ``history.json`` keeps the whole promotion stack so ``rollback``
  can step back more than once (past the first promotion it returns to the bare base model).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from csassist import paths
from csassist.core.atomic import atomic_directory, atomic_write_text
from csassist.core.errors import DataError, ModelMissingError

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.knowledge.embedder import Encoder
    from csassist.core.learn.feedback import FeedbackLog

#: Fewer pairs than this and training would only memorise noise: refuse.
DEFAULT_MIN_PAIRS = 20
#: ROUGE-L may dip by this much (absolute) and still count as "not worse" (small, noisy samples).
ROUGE_TOLERANCE = 0.01
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
_VERSION_DIR = re.compile(r"^v(\d{4,})-")

Progress = Callable[[dict[str, Any]], None]


# ----------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Pair:
    """One supervised example: the exact prompt the generator saw and the reply the agent sent."""

    prompt: str
    target: str
    outcome: str
    intent: str | None = None
    ts: float = 0.0


@dataclass(frozen=True)
class Dataset:
    """Train/validation pairs plus a summary that is printed by ``--dry-run`` and saved with the adapter."""

    train: tuple[Pair, ...]
    val: tuple[Pair, ...]
    summary: dict[str, Any] = field(default_factory=dict)


def _norm(text: str) -> str:
    """Whitespace-normalised text for deduplication."""
    return " ".join(text.split())


def pairs_from_events(events: Iterable[dict[str, Any]]) -> tuple[list[Pair], dict[str, Any]]:
    """Turn stored feedback events into deduplicated pairs; also return counts for the summary.

    Accepted and edited outcomes with a non-empty prompt and sent text qualify.  Duplicates (same
    normalised prompt) keep the most recent sent text: that is the agent's latest word on it.
    """
    by_outcome: Counter[str] = Counter()
    candidates: list[Pair] = []
    skipped_empty = 0
    for event in events:
        outcome = str(event.get("outcome"))
        by_outcome[outcome] += 1
        if outcome not in ("accepted", "edited"):
            continue
        prompt, target = event.get("prompt") or "", event.get("final_text") or ""
        if not prompt.strip() or not target.strip():
            skipped_empty += 1
            continue
        intent = event.get("intent_correction") or event.get("intent")
        candidates.append(Pair(prompt, target.strip(), outcome, intent, float(event.get("ts") or 0.0)))
    latest: dict[str, Pair] = {}
    for pair in sorted(candidates, key=lambda p: p.ts):
        latest[_norm(pair.prompt)] = pair
    pairs = sorted(latest.values(), key=lambda p: p.ts)
    counts = {
        "events": sum(by_outcome.values()),
        "events_by_outcome": {o: by_outcome.get(o, 0) for o in ("accepted", "edited", "rejected", "ignored")},
        "candidate_pairs": len(candidates),
        "skipped_empty": skipped_empty,
        "duplicates_dropped": len(candidates) - len(pairs),
        "pairs": len(pairs),
    }
    return pairs, counts


def split_pairs(pairs: Sequence[Pair], val_split: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Seeded shuffle, then the last ``val_split`` share (at least one pair) goes to validation."""
    if not 0.0 < val_split < 1.0:
        raise DataError(f"--val-split must be between 0 and 1 (got {val_split})")
    order = list(pairs)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_split))
    return order[:-n_val], order[-n_val:]


def _example(pair: Pair, limit: int = 160) -> dict[str, str]:
    """A short, already-redacted example for the summary (the end of the prompt holds the question)."""
    prompt = _norm(pair.prompt)
    target = _norm(pair.target)
    return {
        "outcome": pair.outcome,
        "intent": pair.intent or "",
        "prompt_end": ("..." + prompt[-limit:]) if len(prompt) > limit else prompt,
        "reply": (target[:limit] + "...") if len(target) > limit else target,
    }


def build_dataset(
    log: FeedbackLog,
    val_split: float = 0.1,
    seed: int = 13,
    min_pairs: int = DEFAULT_MIN_PAIRS,
    examples: int = 3,
    enforce_min: bool = True,
) -> Dataset:
    """Read the log and build the train/validation split, refusing when there is too little data.

    ``enforce_min=False`` (the dry run) never refuses: it reports ``enough_data`` in the summary so an
    agent who has accepted a dozen suggestions sees them counted before training is possible.
    """
    pairs, counts = pairs_from_events(log.events())
    if len(pairs) < min_pairs and enforce_min:
        raise DataError(
            f"{log.path}: only {len(pairs)} usable pair(s) (accepted or edited suggestions with their sent text; "
            f"{counts['events']} events logged); at least {min_pairs} are needed to fine-tune. "
            "Accept or edit more suggestions in the app, then run this again."
        )
    train, val = split_pairs(pairs, val_split, seed) if len(pairs) >= 2 else (list(pairs), [])
    intents = Counter(p.intent or "(none)" for p in pairs)
    summary = {
        **counts,
        "log": str(log.path),
        "train": len(train),
        "val": len(val),
        "val_split": val_split,
        "seed": seed,
        "min_pairs": min_pairs,
        "enough_data": len(pairs) >= min_pairs,
        "pairs_by_outcome": dict(Counter(p.outcome for p in pairs)),
        "pairs_by_intent": dict(intents.most_common()),
        "examples": [_example(p) for p in pairs[-examples:]] if examples else [],
    }
    return Dataset(tuple(train), tuple(val), summary)


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


# ---------------------------------------------------------------------------------------- evaluation
def generate_reply(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> str:
    """Greedy reply to one rendered prompt (deterministic, so before/after differ only by the adapter)."""
    import torch

    from csassist.core.reply.prompts import clean_draft

    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=1.1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return str(clean_draft(text))


def reply_metrics(preds: Sequence[str], refs: Sequence[str], encoder: Encoder | None) -> dict[str, Any]:
    """Mean ROUGE-L (and embedding cosine when an encoder is given) of predictions vs references."""
    from csassist.core.learn.textmetrics import embedding_cosine, rouge_l

    rouge = [rouge_l(p, r) for p, r in zip(preds, refs, strict=True)]
    result: dict[str, Any] = {"n": len(preds), "rouge_l": sum(rouge) / len(rouge) if rouge else None}
    if encoder is not None and preds:
        cos = embedding_cosine(list(preds), list(refs), encoder)
        result["embedding_cosine"] = sum(cos) / len(cos)
    else:
        result["embedding_cosine"] = None
    return result


def evaluate_generation(
    peft_model: Any,
    tokenizer: Any,
    pairs: Sequence[Pair],
    max_new_tokens: int,
    encoder: Encoder | None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate for ``pairs`` with the adapter disabled (base) and enabled; score both."""
    before: list[str] = []
    after: list[str] = []
    total = 2 * len(pairs)
    with peft_model.disable_adapter():
        for i, pair in enumerate(pairs):
            before.append(generate_reply(peft_model, tokenizer, pair.prompt, max_new_tokens))
            if progress:
                progress({"phase": "generate", "step": i + 1, "total": total})
    for i, pair in enumerate(pairs):
        after.append(generate_reply(peft_model, tokenizer, pair.prompt, max_new_tokens))
        if progress:
            progress({"phase": "generate", "step": len(pairs) + i + 1, "total": total})
    refs = [p.target for p in pairs]
    return {
        "before": reply_metrics(before, refs, encoder),
        "after": reply_metrics(after, refs, encoder),
        "samples": [
            {"reference": r[:300], "before": b[:300], "after": a[:300]}
            for r, b, a in list(zip(refs, before, after, strict=True))[:3]
        ],
    }


def is_better(metrics: dict[str, Any]) -> tuple[bool, str]:
    """The promotion rule (see the module docstring); returns the verdict and a one-line reason."""
    loss_before, loss_after = metrics.get("val_loss_before"), metrics.get("val_loss_after")
    if loss_before is None or loss_after is None or not (loss_after < loss_before - 1e-6):
        return False, f"validation loss did not go down ({_f(loss_before)} -> {_f(loss_after)})"
    gen = metrics.get("generation") or {}
    r_before = (gen.get("before") or {}).get("rouge_l")
    r_after = (gen.get("after") or {}).get("rouge_l")
    if r_before is None or r_after is None:
        return True, f"validation loss {_f(loss_before)} -> {_f(loss_after)} (no generation check)"
    if r_after < r_before - ROUGE_TOLERANCE:
        return False, f"ROUGE-L dropped {_f(r_before)} -> {_f(r_after)} although loss went down"
    return True, f"validation loss {_f(loss_before)} -> {_f(loss_after)}, ROUGE-L {_f(r_before)} -> {_f(r_after)}"


def _f(value: Any) -> str:
    """Compact number for messages."""
    return "n/a" if value is None else f"{float(value):.4f}"


# ------------------------------------------------------------------------------ versions & promotion
def _adapters_root(out: Path | None) -> Path:
    """Where versioned adapters live (``--out`` or the user models dir)."""
    return Path(out) if out is not None else paths.adapters_dir()


def next_version_name(root: Path, now: float | None = None) -> str:
    """``vNNNN-YYYYmmddTHHMMSSZ``, one above the highest existing version."""
    highest = 0
    if root.exists():
        for child in root.iterdir():
            match = _VERSION_DIR.match(child.name)
            if match and child.is_dir():
                highest = max(highest, int(match.group(1)))
    stamp = dt.datetime.fromtimestamp(time.time() if now is None else now, tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"v{highest + 1:04d}-{stamp}"


def _history(root: Path) -> list[str]:
    """The promotion stack, oldest first."""
    file = root / "history.json"
    if not file.exists():
        return []
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{file}: unreadable promotion history ({exc})") from exc
    return [str(v) for v in value] if isinstance(value, list) else []


def _write_pointers(root: Path, history: list[str]) -> None:
    """Write ``history.json`` then ``current``/``previous`` atomically (absent when there is none)."""
    atomic_write_text(root / "history.json", json.dumps(history, indent=1))
    for name, value in (
        ("current", history[-1] if history else None),
        ("previous", history[-2] if len(history) > 1 else None),
    ):
        pointer = root / name
        if value is None:
            pointer.unlink(missing_ok=True)
        else:
            atomic_write_text(pointer, value + "\n")


def promote(name: str, out: Path | None = None) -> None:
    """Make adapter ``name`` the current one (the old current becomes ``previous``)."""
    root = _adapters_root(out)
    if not (root / name / "adapter_config.json").exists():
        raise DataError(f"{root / name}: not a saved adapter")
    history = [h for h in _history(root) if h != name] + [name]
    _write_pointers(root, history)


def rollback(out: Path | None = None) -> str | None:
    """Return to the previously promoted adapter; ``None`` means back to the bare base model."""
    root = _adapters_root(out)
    history = _history(root)
    if not history:
        raise DataError(f"{root}: no promoted adapter to roll back from")
    history.pop()
    _write_pointers(root, history)
    return history[-1] if history else None


def current_adapter(out: Path | None = None) -> Path | None:
    """Directory of the promoted adapter the app should load, or ``None`` (use the base model)."""
    root = _adapters_root(out)
    pointer = root / "current"
    if not pointer.exists():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    directory = root / name
    return directory if name and (directory / "adapter_config.json").exists() else None


def save_adapter(peft_model: Any, metrics: dict[str, Any], summary: dict[str, Any], out: Path | None = None) -> Path:
    """Save adapter weights, metrics.json and data_summary.json as a new version, atomically."""
    root = _adapters_root(out)
    root.mkdir(parents=True, exist_ok=True)
    name = next_version_name(root)
    target = root / name
    with atomic_directory(target) as tmp:
        peft_model.save_pretrained(str(tmp))
        (tmp / "metrics.json").write_text(json.dumps({**metrics, "version": name}, indent=2), encoding="utf-8")
        (tmp / "data_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return target


# ------------------------------------------------------------------------------------------- the run
@dataclass
class FinetuneResult:
    """What ``finetune --from-log`` did: printed by the command, asserted by tests and the benchmark."""

    summary: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    adapter_dir: str | None = None
    promoted: bool = False
    reason: str = ""
    intent_refit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def finetune_from_log(
    log: FeedbackLog,
    config: TrainConfig,
    *,
    base: str | None = None,
    out: Path | None = None,
    force: bool = False,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    loaded: tuple[Any, Any, str] | None = None,
) -> FinetuneResult:
    """The whole learning step: data -> LoRA training -> before/after evaluation -> save -> promote.

    ``loaded`` lets a caller (benchmark, tests) pass an already-loaded ``(model, tokenizer, base_id)``.
    """
    from accelerate import Accelerator

    from csassist.core.knowledge.embedder import configure_threads

    configure_threads(None)
    dataset = build_dataset(log, config.val_split, config.seed, config.min_pairs)
    accelerator = Accelerator(cpu=_multi_process_without_gpu())
    if progress is not None and accelerator.is_main_process:
        progress({"phase": "load", "step": 0, "total": 1})
    model, tokenizer, base_id = loaded if loaded is not None else load_base(base)
    peft_model, metrics = train_lora(model, tokenizer, dataset.train, dataset.val, config, progress, accelerator)
    result = FinetuneResult(summary=dataset.summary)
    if accelerator.is_main_process:
        gen_pairs = list(dataset.val[: config.gen_eval_cap])
        if gen_pairs:
            metrics["generation"] = evaluate_generation(
                peft_model, tokenizer, gen_pairs, config.max_new_tokens, encoder, progress
            )
        metrics.update({"base_model": base_id, "config": asdict(config), "created": time.time()})
        better, reason = is_better(metrics)
        metrics["better"] = better
        adapter_dir = save_adapter(peft_model, metrics, dataset.summary, out)
        promoted = better or force
        if promoted:
            promote(adapter_dir.name, out)
            reason = reason if better else f"forced: {reason}"
        result = FinetuneResult(dataset.summary, metrics, str(adapter_dir), promoted, reason)
    accelerator.wait_for_everyone()
    peft_model.unload()  # take the LoRA layers out again: a caller's loaded base model stays reusable
    return result


def _multi_process_without_gpu() -> bool:
    """Under ``torchrun``/``accelerate launch`` with no GPU, accelerate needs ``cpu=True`` to use gloo.

    (With GPUs it picks NCCL by itself; on one process ``cpu=False`` keeps CUDA/MPS when present.)
    """
    import os

    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def refit_intents(
    log: FeedbackLog, encoder: Encoder, index_dir: Path, kb_examples: Sequence[Any] = ()
) -> dict[str, Any] | None:
    """Refit the intent head with the agent's corrections added to the KB's examples.

    A correction is an event whose ``intent_correction`` is set and whose ``customer_text`` (redacted)
    was logged.  Returns ``None`` when there are no corrections (nothing to learn); otherwise the head's
    report plus how many corrections were used.
    """
    from csassist.core.types import IntentExample
    from csassist.core.understand.intent import fit_intent_head

    corrections = [
        IntentExample(text=str(e["customer_text"]), intent=str(e["intent_correction"]), source="feedback-log")
        for e in log.events()
        if e.get("intent_correction") and (e.get("customer_text") or "").strip()
    ]
    if not corrections:
        return None
    seen: set[str] = set()
    unique: list[IntentExample] = []
    for example in reversed(corrections):  # the latest correction of a text wins
        key = _norm(example.text).lower()
        if key not in seen:
            seen.add(key)
            unique.append(example)
    corrected = {_norm(e.text).lower() for e in unique}
    base_examples = [e for e in kb_examples if _norm(e.text).lower() not in corrected]
    report = fit_intent_head([*base_examples, *unique], encoder, Path(index_dir) / "intent")
    return {**report, "corrections_used": len(unique)}

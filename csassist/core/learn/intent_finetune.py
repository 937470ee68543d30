"""Fine-tuning the intent encoder: the training loop.

Why a separate path from the head: the frozen-embedding head is good (~93 % on BANKING77) but the
encoder itself never sees the task.  Fine-tuning every layer with a mean-pooling + linear head
(the sentence-transformers pooling the model was pre-trained with, so training starts from good
sentence vectors) is the accurate path.  The recipe: AdamW with weight decay (no decay on biases
and LayerNorm), linear warmup then cosine decay, dropout before the head, label smoothing, early
stopping on a validation split (carved from train, stratified, when none is given), optional
freezing of the embeddings or the lowest N layers, and a fixed seed.

The head starts from a linear probe (LP-FT, Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
Features"): a logistic regression fitted on the frozen encoder's mean-pooled vectors becomes the
initial head, and the whole network then trains at one learning rate.  A random head's first
hundreds of steps send large, noisy gradients into a good encoder; a probed head starts where the
frozen-embedding head already is (~93 % on BANKING77) and the encoder only has to refine.  The probe
costs one forward pass over the training set and a scikit-learn fit (about 2 minutes on BANKING77
on this CPU), inside the time budget.  The classifier, its batches and forward passes, and the probe itself live in
:mod:`csassist.core.learn.intent_batches`; this module is the loop: schedule, budget, checkpoints.

A time budget (``FinetuneConfig.time_budget_s``) resizes the schedule once step times are measured
so the decay ends inside it, and stops training cleanly when it is used up: the step that hits it
is evaluated and the best evaluated checkpoint is kept.

The result is an :class:`~csassist.core.understand.intent.IntentModel` (the trained body as a
:class:`~csassist.core.understand.intent_encoder.TransformerEncoder` + the linear head), the same
type as the index head; saving and promotion are :mod:`csassist.core.learn.intent_promotion`'s job.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from csassist.core.errors import DataError, ModelMissingError
from csassist.core.learn.intent_batches import (
    build_classifier,
    length_bucketed_batches,
    pad,
    predict_probs,
    probe_head,
)
from csassist.core.learn.intent_head import choose_threshold
from csassist.core.learn.second_opinion import FrozenHead, fit_frozen_head, second_opinion_for
from csassist.core.types import IntentExample
from csassist.core.understand.intent import ORIGIN_STORE, IntentModel, LinearHead, SecondOpinion, clean_text
from csassist.core.understand.intent_data import OOS_LABEL, check_trainable
from csassist.core.understand.intent_encoder import TransformerEncoder

#: Steps timed before the up-front estimate is reported.
ESTIMATE_AFTER_STEPS = 3
#: Seconds kept free at the end of a time budget for the final evaluation and saving.
BUDGET_RESERVE_S = 5.0
#: ``head_init="auto"`` starts from a linear probe below this many training rows for the median intent.
#: Measured: with ~13 an intent (BANKING77-quick) the probe won 88.1 % vs 83.1 % at equal steps; with
#: ~123 an intent (all of BANKING77) the random head won (93.38 % vs 93.05 %; 93.60 % alone, 94.12 %
#: with the second opinion), the probe's head having stopped early on a noisier validation curve.
PROBE_BELOW_EXAMPLES = 60


def resolve_head_init(head_init: str, counts: Counter[str]) -> str:
    """``probe`` or ``random`` for ``head_init`` (``auto`` decides by the median intent's number of rows)."""
    if head_init not in ("auto", "probe", "random"):
        raise DataError(f"head_init must be auto, probe or random, not {head_init!r}")
    if head_init != "auto":
        return head_init
    sizes = sorted(n for label, n in counts.items() if label != OOS_LABEL)
    median = sizes[len(sizes) // 2] if sizes else 0
    return "probe" if median < PROBE_BELOW_EXAMPLES else "random"


@dataclass
class TrainedIntentModel:
    """The trained model plus the validation rows it was judged on (promotion re-scores the old model on them)."""

    model: IntentModel
    val_in: list[IntentExample]
    val_oos: list[IntentExample]


@dataclass
class FinetuneConfig:
    """Every knob of the fine-tuning recipe (defaults sized for MiniLM-L6 on a small CPU)."""

    base: str | None = None  # encoder directory or name; None -> the bundled all-MiniLM-L6-v2
    epochs: int = 8
    lr: float = 1.5e-4
    head_lr: float | None = None  # None -> lr with a probed head, 10x lr with a random one (it starts from scratch)
    #: auto | probe (LP-FT: logistic regression on the frozen vectors) | random.  ``auto`` probes when the
    #: median intent has fewer than :data:`PROBE_BELOW_EXAMPLES` training rows (see :func:`resolve_head_init`).
    head_init: str = "auto"
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
    #: Fit a head on the configured embedder's frozen vectors too and mix it in when that helps on validation
    #: (:mod:`csassist.core.learn.second_opinion`); its embedding time counts against the budget.
    second_opinion: bool = True
    #: The configured embedder the second opinion reads (the app's retrieval embedder); None -> the default.
    embedder: str | None = None
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


def load_base_encoder(base: str | None) -> tuple[str, Any, Any]:
    """``(model id, tokenizer, transformers encoder)`` of the base to fine-tune (the configured embedder by default).

    Raises :class:`ModelMissingError` naming the model and the path when it cannot be loaded.
    """
    from transformers import AutoModel, AutoTokenizer

    from csassist.core.knowledge.embedder import resolve_embedder_path

    base_id, base_path = resolve_embedder_path(base)
    try:
        return base_id, AutoTokenizer.from_pretrained(base_path), AutoModel.from_pretrained(base_path)
    except (OSError, ValueError) as exc:
        raise ModelMissingError(f"cannot load base encoder {base_id!r} from {base_path}: {exc}") from exc


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


def train_intent_model(
    train_examples: Sequence[IntentExample],
    val_examples: Sequence[IntentExample] | None = None,
    config: FinetuneConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> TrainedIntentModel:
    """Fine-tune encoder + head on ``train_examples``; return the best checkpoint as an :class:`IntentModel`.

    ``progress`` receives dicts so a CLI can draw a bar (or print JSON lines) without core knowing
    about it: ``{"event": "start", "train_examples", "val_examples", "labels", "planned_steps",
    "time_budget_s"}``, ``{"event": "estimate", "seconds_per_step", "planned_steps",
    "estimated_seconds"}`` (after the first steps are timed), ``{"event": "step", "step",
    "total_steps", "epoch", "loss", "lr", "elapsed_s"}``, ``{"event": "eval", "step", "epoch",
    "val_accuracy"}``, ``{"event": "probe", "probe_seconds", "probe_train_accuracy"}`` once the head is
    probed, ``{"event": "second_opinion", "fit_seconds"}`` once the frozen-embedder head is fitted, and
    ``{"event": "budget", "step", "elapsed_s"}`` when the time budget stops training.  Nothing is saved here (see :mod:`csassist.core.learn.intent_promotion`).
    """
    import torch
    from torch import nn

    from csassist.core.knowledge.embedder import configure_threads

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

    base_id, tokenizer, encoder = load_base_encoder(cfg.base)
    trainable_layers = _freeze(encoder, cfg.freeze)
    net = build_classifier(encoder, len(labels), cfg.dropout)
    head_init = resolve_head_init(cfg.head_init, Counter(e.intent for e in train_in))
    texts = [clean_text(e.text) for e in train_in]
    targets = torch.tensor([index[e.intent] for e in train_in], dtype=torch.long)
    net.train()

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    enc_params = [(n, p) for n, p in net.encoder.named_parameters() if p.requires_grad]
    head_lr = cfg.head_lr if cfg.head_lr is not None else cfg.lr * (1 if head_init == "probe" else 10)
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

    if progress:
        progress({"event": "start", "train_examples": len(train_in), "val_examples": len(val_in),
                  "val_oos_examples": len(val_oos), "labels": len(labels), "planned_steps": plan["total"],
                  "time_budget_s": cfg.time_budget_s})
    probe_report: dict[str, float] = {}
    if head_init == "probe":  # inside the budget: ``started`` is already running
        probe_report = probe_head(net, tokenizer, texts, targets.numpy(), cfg.max_length, cfg.seed)
        if progress:
            progress({"event": "probe", **probe_report})
    frozen: FrozenHead | None = None
    if cfg.second_opinion and val_texts:  # before the loop, so the budget's schedule accounts for it
        frozen = fit_frozen_head(texts, targets.numpy(), labels, cfg.embedder, cfg.seed)
        if progress:
            progress({"event": "second_opinion", "fit_seconds": frozen.seconds})
    eval_seconds = 0.0
    budget_hit = False
    estimate_at = min(ESTIMATE_AFTER_STEPS, plan["total"])
    loop_started = time.perf_counter()
    best_acc, best_state, best_step, bad_evals = -1.0, None, 0, 0
    history: list[dict[str, Any]] = []
    step, stopped_early, last_loss = 0, False, float("nan")
    epoch = 0
    for epoch in range(1, max(1, cfg.epochs) + 1):
        batches = length_bucketed_batches(lengths, batch_size, gen)
        for b, idx in enumerate(batches):
            ids, mask = pad([token_ids[i] for i in idx], pad_id)
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
            elapsed = time.perf_counter() - started
            if progress and step == estimate_at:
                per_step = (time.perf_counter() - loop_started) / step
                evals = len(eval_points) * plan["total"] / max(1, steps_per_epoch)
                progress({"event": "estimate", "seconds_per_step": round(per_step, 4), "planned_steps": plan["total"],
                          "estimated_seconds": round(elapsed + per_step * (plan["total"] - step) * (1 + 0.02 * evals), 1)})
            if progress:
                progress({"event": "step", "step": step, "total_steps": plan["total"], "epoch": epoch,
                          "loss": last_loss, "lr": scheduler.get_last_lr()[0], "elapsed_s": round(elapsed, 2)})
            if cfg.time_budget_s and elapsed + eval_seconds + BUDGET_RESERVE_S >= cfg.time_budget_s:
                budget_hit = True  # used up: evaluate this step (unless nothing to compare) and stop
                if progress:
                    progress({"event": "budget", "step": step, "elapsed_s": round(elapsed, 2)})
            at_eval = (b + 1) in eval_points or step >= plan["total"] or budget_hit
            if at_eval:
                if val_texts:
                    e0 = time.perf_counter()
                    probs = predict_probs(net, tokenizer, val_texts, cfg.max_length)
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
            if step >= plan["total"] or budget_hit:
                break
        if stopped_early or budget_hit or step >= plan["total"]:
            break
    # The budget also stops training when it shrank the schedule and the shrunk schedule ran out.
    budget_hit = budget_hit or bool(cfg.time_budget_s and step >= plan["total"] < plan.get("ceiling", plan["total"]))
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    train_seconds = time.perf_counter() - started

    # Threshold and metrics on validation data.
    val_probs = predict_probs(net, tokenizer, val_texts, cfg.max_length) if val_texts else np.zeros((0, len(labels)))
    oos_texts = [clean_text(e.text) for e in val_oos]
    oos_probs = predict_probs(net, tokenizer, oos_texts, cfg.max_length) if oos_texts else np.zeros((0, len(labels)))
    second: SecondOpinion | None = None
    second_report: dict[str, Any] = {}
    if frozen is not None and len(val_probs):
        second, second_report = second_opinion_for(frozen, val_probs, val_texts, val_y)
        if second is not None:  # the threshold and every validation figure describe the model as saved: mixed
            val_probs = second.mixed(val_probs, val_texts)
            oos_probs = second.mixed(oos_probs, oos_texts) if len(oos_probs) else oos_probs
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

    report: dict[str, Any] = {
        "kind": "finetuned",
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
        "time_budget_s": cfg.time_budget_s,
        "stopped_by_budget": budget_hit,
        "final_loss": last_loss,
        "train_seconds": round(train_seconds, 1),
        "trainable_layers": trainable_layers,
        "head_init": head_init,
        **probe_report,
        "second_opinion": second_report or None,
        "history": history,
        "per_intent": per_intent,
        "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
    }
    body = TransformerEncoder(net.encoder, tokenizer, f"finetuned:{base_id}", max_length=cfg.max_length)
    head = LinearHead(
        tuple(labels),
        net.head.weight.detach().float().numpy().copy(),
        net.head.bias.detach().float().numpy().copy(),
    )
    model = IntentModel(body, head, float(threshold), "finetuned", origin=ORIGIN_STORE, report=report,
                        second_opinion=second)
    return TrainedIntentModel(model=model, val_in=list(val_in), val_oos=list(val_oos))

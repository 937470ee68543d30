"""Few-shot contrastive fine-tuning of the intent encoder (SetFit's method), then a linear head.

Why: with ~20 examples an intent, full cross-entropy fine-tuning (:mod:`~csassist.core.learn.
intent_finetune`) has little to learn from and the frozen head cannot move the embedding space at
all.  SetFit's recipe does: first tune the *body* so that sentences of one intent come close and
sentences of different intents move apart, then fit an ordinary logistic-regression head on the tuned
embeddings.  Every pair inside a batch is a training signal, so a few hundred examples give tens of
thousands of pairs.

The loss is supervised contrastive (SupCon, Khosla et al. 2020; setfit ships it as
``setfit.losses.SupConLoss``) on mean-pooled, L2-normalised vectors: for each anchor, the
log-probability of its same-intent batch-mates among all batch-mates at temperature ``tau``.
Batches are *class-balanced* (``intents_per_batch`` intents x ``per_intent`` examples) so that every
anchor has positives; the steps are AdamW with a short linear warmup and linear decay.  The head is
:func:`csassist.core.learn.intent_head.fit_head` (the index head's logistic regression, ``C``
included) on the tuned body, wrapped as a :class:`~csassist.core.understand.intent_encoder.
TransformerEncoder` with ``normalize=True`` so the head sees at inference exactly what it was fitted
on.  The OOS threshold is chosen as the head and the full fine-tune choose it
(:func:`~csassist.core.learn.intent_head.choose_threshold`), on the validation split when there is
one (in-scope rows the body never saw + half of the ``oos`` rows); a carved split then joins the
head's training rows (the body never sees it), since with ~20 examples an intent every row counts.

Variants, measured on the dev set by ``bench/intent_contrastive.py`` (table in
``bench/results/intent_contrastive.json`` and the README): typo-augmented anchors (a quarter of each
batch replaced by a copy with generated typos, same intent) are **on**: top-3 0.941 -> 0.951 and typo
0.86 -> 0.90 at the same closed-set accuracy.  Off: 60 instead of 120 steps (closed-set -2 pt, top-3
unchanged); a weight-space ensemble of the tuned and pre-trained body (WiSE-FT, ``mix``: 0.7 cost
0.5 pt closed-set for no top-3; 0.5 on the 60-step body bought top-3 0.941 -> 0.956 for closed-set
0.824 -> 0.799, i.e. back towards the frozen head); hard-negative batches (``hard_negatives``: half of a batch's
intents are the nearest neighbours, by centroid, of the other half: closed-set equal at 0.833, top-3
0.951 -> 0.941, indirect 0.60 -> 0.54, typo 0.90 -> 1.00).

Why not the ``setfit`` library (1.2.0): it installs and trains offline with sentence-transformers 6.2
and transformers 5.24 (tried in a throw-away venv: ``SetFitModel.from_pretrained(<MiniLM dir>)`` +
``Trainer.train()`` ran), but (1) it pulls ``datasets``, ``evaluate``, ``pyarrow`` and ``pandas``
(~265 MB more in this venv; pip's dry run) for a loop of ~60 lines; (2) its training runs inside the
Hugging Face ``Trainer`` (via sentence-transformers), where the time budget that resizes the schedule
after the first timed steps, the up-front estimate and our JSON progress events would be callbacks
poking at another library's scheduler; (3) it saves a sentence-transformers directory plus a
*pickled* scikit-learn head, a second model format next to the store's one (``meta.json`` +
``head.npz`` + ``encoder/``), and unpickling is code execution.  Its method is what we use; its code
is not.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from csassist.core.errors import DataError
from csassist.core.knowledge.embedder import load_encoder
from csassist.core.learn.intent_finetune import (
    BUDGET_RESERVE_S,
    ESTIMATE_AFTER_STEPS,
    ProgressCallback,
    TrainedIntentModel,
    _lr_lambda,
    load_base_encoder,
    split_validation,
)
from csassist.core.learn.intent_head import DEFAULT_C, choose_threshold, fit_head
from csassist.core.learn.second_opinion import FrozenHead, second_opinion_for
from csassist.core.types import IntentExample
from csassist.core.understand.intent import ORIGIN_STORE, IntentModel, SecondOpinion, clean_text
from csassist.core.understand.intent_data import OOS_LABEL, check_trainable
from csassist.core.understand.intent_encoder import TransformerEncoder, mean_pool


@dataclass
class ContrastiveConfig:
    """The contrastive recipe's knobs; defaults are the lead's measured prototype (dev set +4.4 pt closed-set)."""

    base: str | None = None  # encoder directory or name; None -> the bundled all-MiniLM-L6-v2
    steps: int = 120
    lr: float = 3e-5
    warmup_steps: int = 10
    weight_decay: float = 0.01
    temperature: float = 0.05
    intents_per_batch: int = 16
    per_intent: int = 4
    head_c: float = DEFAULT_C  # the index head's C: probabilities alike, so the OOS detector's features are too
    max_length: int = 64
    val_split: float = 0.1  # 0 = train on everything; the threshold then comes from the head's CV
    seed: int = 13
    threads: int | None = None
    time_budget_s: float | None = None
    typo_share: float = 0.25  # share of batch examples replaced by a typo'd copy (same intent): +1 pt top-3, typo 0.86 -> 0.90
    hard_negatives: bool = False
    #: Weight-space ensemble (WiSE-FT, Wortsman et al. 2022): final body = mix * tuned + (1 - mix) * base.
    #: 1.0 = the tuned body alone; lower keeps more of the pre-trained ranking (top-3) at some top-1.
    mix: float = 1.0
    #: After the threshold is chosen on the validation split, refit the head on train + validation
    #: (the body is unchanged): with ~20 examples an intent, 10 % more rows measured +3 pt on the dev set.
    refit_head: bool = True
    #: Mix a head on the configured embedder's frozen vectors into the tuned model's probabilities when it
    #: helps on validation (:mod:`csassist.core.learn.second_opinion`; dev set, 1,106 KB rows: top-1 after the
    #: verdict 0.902 alone -> 0.917 mixed, bench/results/intent_contrastive_second_opinion.json).
    second_opinion: bool = True
    #: The configured embedder the second opinion reads; None -> the default.
    embedder: str | None = None


# ------------------------------------------------------------------------------------------ pieces


def supcon_loss(embeddings: Any, labels: Any, temperature: float) -> Any:
    """Supervised contrastive loss over a batch of L2-normalised ``embeddings`` (Khosla et al. 2020).

    For each anchor with at least one same-label batch-mate: minus the mean log-softmax (over all other
    batch-mates, at ``temperature``) of its positives.  Anchors without positives are left out rather
    than contributing a NaN.
    """
    import torch

    sims = embeddings @ embeddings.T / temperature
    n = sims.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=sims.device)
    sims = sims.masked_fill(self_mask, float("-inf"))
    log_prob = sims - torch.logsumexp(sims, dim=1, keepdim=True)
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    counts = positives.sum(1)
    has = counts > 0
    if not bool(has.any()):
        return (embeddings * 0.0).sum()  # no positives anywhere: a zero loss that keeps the graph
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1)
    return -(pos_log_prob[has] / counts[has]).mean()


_NEIGHBOURS = {c: n for c, n in zip("qwertyuiopasdfghjklzxcvbnm", (
    "wa", "qes", "wrd", "etf", "ryg", "tuh", "yij", "uok", "ipl", "ol", "qsz", "awdx", "sefc", "drgv", "fthb",
    "gyjn", "hukm", "jil", "kop", "xas", "zcsd", "xvdf", "cbfg", "vnhg", "bmjh", "njk"), strict=True)}


def add_typos(text: str, rng: random.Random, rate: float = 0.15) -> str:
    """A copy of ``text`` with typing errors in about ``rate`` of its words (longer than 3 letters).

    One of: a dropped letter, two letters swapped, a doubled letter, a keyboard neighbour.  The kinds
    customers make on phones; digits and short words are left alone so order numbers stay intact.
    """
    words = text.split(" ")
    for w, word in enumerate(words):
        if len(word) <= 3 or not word.isalpha() or rng.random() >= rate:
            continue
        i = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            word = word[:i] + word[i + 1 :]
        elif kind == 1:
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == 2:
            word = word[:i] + word[i] + word[i:]
        else:
            near = _NEIGHBOURS.get(word[i].lower(), word[i])
            word = word[:i] + rng.choice(near) + word[i + 1 :]
        words[w] = word
    out = " ".join(words)
    return out if out != text else text  # unchanged is fine: the anchor is then a plain duplicate


def balanced_batch(
    by_label: Sequence[Sequence[int]], n_intents: int, per_intent: int, rng: random.Random,
    neighbours: Sequence[Sequence[int]] | None = None,
) -> list[int]:
    """Row indices of one class-balanced batch: ``n_intents`` labels x ``per_intent`` examples each.

    Labels with fewer examples repeat some (sampling with replacement only when needed).  With
    ``neighbours`` (per label, the other labels by decreasing centroid similarity) half the labels
    are drawn at random and the rest are their nearest neighbours: hard negatives.
    """
    labels = [k for k, rows in enumerate(by_label) if rows]
    n = min(n_intents, len(labels))
    if neighbours is None:
        chosen = rng.sample(labels, n)
    else:
        seeds = rng.sample(labels, max(1, n // 2))
        chosen = list(seeds)
        for s in seeds:
            for other in neighbours[s]:
                if len(chosen) >= n:
                    break
                if other not in chosen and by_label[other]:
                    chosen.append(other)
                    break
        rest = [k for k in labels if k not in chosen]
        chosen += rng.sample(rest, n - len(chosen))
    batch: list[int] = []
    for k in chosen:
        rows = list(by_label[k])
        picked = rng.sample(rows, per_intent) if len(rows) >= per_intent else [rng.choice(rows) for _ in range(per_intent)]
        batch.extend(picked)
    return batch


def _centroid_neighbours(vectors: np.ndarray, by_label: Sequence[Sequence[int]]) -> list[list[int]]:
    """For each label, the other labels ordered by cosine similarity of their centroids (nearest first)."""
    cents = np.stack([vectors[list(rows)].mean(0) if rows else np.zeros(vectors.shape[1]) for rows in by_label])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-9
    sims = cents @ cents.T
    np.fill_diagonal(sims, -np.inf)
    return [list(np.argsort(-row, kind="stable")) for row in sims]


# ------------------------------------------------------------------------------------------ training


def train_contrastive_model(
    train_examples: Sequence[IntentExample],
    val_examples: Sequence[IntentExample] | None = None,
    config: ContrastiveConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> TrainedIntentModel:
    """Tune the body contrastively, fit the head on it, choose the OOS threshold; return the model.

    ``progress`` gets the same events as the full fine-tune (``start``, ``estimate`` after the first
    timed steps, ``step``, ``budget`` when the time budget stops training, one ``eval`` at the end), so
    the CLI draws both the same way.  ``oos`` rows never train the body or the head; they tune the
    threshold.  Nothing is saved here (see :mod:`csassist.core.learn.intent_promotion`).
    """
    import torch

    from csassist.core.knowledge.embedder import configure_threads

    cfg = config or ContrastiveConfig()
    if cfg.steps < 1 or cfg.per_intent < 2 or cfg.intents_per_batch < 2 or cfg.temperature <= 0:
        raise DataError("contrastive training needs steps >= 1, 2+ intents x 2+ examples a batch, temperature > 0")
    if not 0.0 <= cfg.mix <= 1.0:
        raise DataError(f"mix must be between 0 and 1, not {cfg.mix}")
    configure_threads(cfg.threads)
    started = time.perf_counter()
    rng = random.Random(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    counts = check_trainable(train_examples)
    labels = sorted(counts)
    index = {label: i for i, label in enumerate(labels)}
    train_in = [e for e in train_examples if e.intent != OOS_LABEL and clean_text(e.text)]
    train_oos = [e for e in train_examples if e.intent == OOS_LABEL and clean_text(e.text)]
    if val_examples is None and cfg.val_split > 0:
        train_in, val_in = split_validation(train_in, cfg.val_split, cfg.seed)
        train_oos, val_oos = split_validation(train_oos, 0.5, cfg.seed) if len(train_oos) > 1 else (train_oos, [])
        val_source = f"carved {cfg.val_split:.0%} from train (stratified)"
    elif val_examples is None:
        val_in, val_oos = [], []
        val_source = "none (threshold from the head's cross-validation)"
    else:
        val_in = [e for e in val_examples if e.intent != OOS_LABEL]
        val_oos = [e for e in val_examples if e.intent == OOS_LABEL]
        val_source = "given"
    unknown_val = sorted({e.intent for e in val_in if e.intent not in index})
    val_in = [e for e in val_in if e.intent in index]
    if len({e.intent for e in train_in}) < 2:
        raise DataError("contrastive training needs examples of at least two intents left after the validation split")

    base_id, tokenizer, encoder = load_base_encoder(cfg.base)

    texts = [clean_text(e.text) for e in train_in]
    y = [index[e.intent] for e in train_in]
    by_label: list[list[int]] = [[] for _ in labels]
    for row, k in enumerate(y):
        by_label[k].append(row)
    body = TransformerEncoder(encoder, tokenizer, base_id, max_length=cfg.max_length, normalize=True)
    neighbours = _centroid_neighbours(body.encode(texts), by_label) if cfg.hard_negatives else None

    base_state = {k: v.detach().clone() for k, v in encoder.state_dict().items()} if cfg.mix < 1.0 else {}
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ], lr=cfg.lr)
    plan = {"total": cfg.steps}
    warmup_share = min(0.5, cfg.warmup_steps / max(1, cfg.steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(warmup_share, plan, "linear"))
    batch_size = min(cfg.intents_per_batch, len([b for b in by_label if b])) * cfg.per_intent

    if progress:
        progress({"event": "start", "train_examples": len(train_in), "val_examples": len(val_in),
                  "val_oos_examples": len(val_oos), "labels": len(labels), "planned_steps": plan["total"],
                  "time_budget_s": cfg.time_budget_s, "method": "contrastive"})
    frozen: IntentModel | None = None  # the second opinion's head, fitted before the loop: inside the budget
    frozen_s = 0.0
    if cfg.second_opinion and val_in:
        frozen_started = time.perf_counter()
        frozen = fit_head([*train_in, *train_oos], load_encoder(cfg.embedder or None), cfg.seed, c=cfg.head_c)
        frozen_s = round(time.perf_counter() - frozen_started, 1)
        if progress:
            progress({"event": "second_opinion", "fit_seconds": frozen_s})
    encoder.train()
    loop_started = time.perf_counter()
    estimate_at = min(ESTIMATE_AFTER_STEPS, plan["total"])
    step, budget_hit, last_loss, first_loss = 0, False, float("nan"), float("nan")
    history: list[dict[str, Any]] = []
    while step < plan["total"]:
        rows = balanced_batch(by_label, cfg.intents_per_batch, cfg.per_intent, rng, neighbours)
        batch_texts = [add_typos(texts[r], rng) if cfg.typo_share and rng.random() < cfg.typo_share else texts[r]
                       for r in rows]
        enc = tokenizer(batch_texts, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")
        states = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        vectors = torch.nn.functional.normalize(mean_pool(states, enc["attention_mask"]), dim=-1)
        loss = supcon_loss(vectors, torch.tensor([y[r] for r in rows]), cfg.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        last_loss = float(loss.detach())
        if step == 1:
            first_loss = last_loss
        if not math.isfinite(last_loss):
            raise DataError(f"contrastive training diverged at step {step} (loss {last_loss}); lower --lr")
        elapsed = time.perf_counter() - started
        per_step = (time.perf_counter() - loop_started) / step
        if cfg.time_budget_s and step >= estimate_at:
            # Resize once step times are known: the decay then ends inside the budget (never past --max-steps).
            head_s = 10.0 + per_step  # the head fit and the final embeddings, a rough reserve
            fits = int((cfg.time_budget_s - elapsed - head_s - BUDGET_RESERVE_S) / per_step)
            plan["total"] = max(step, min(cfg.steps, step + fits))
        if progress and step == estimate_at:
            progress({"event": "estimate", "seconds_per_step": round(per_step, 4), "planned_steps": plan["total"],
                      "estimated_seconds": round(elapsed + per_step * (plan["total"] - step), 1)})
        if progress:
            progress({"event": "step", "step": step, "total_steps": plan["total"],
                      "epoch": 1 + (step * batch_size) // max(1, len(texts)), "loss": last_loss,
                      "lr": scheduler.get_last_lr()[0], "elapsed_s": round(elapsed, 2)})
        if step % 10 == 0 or step == plan["total"]:
            history.append({"step": step, "loss": last_loss, "seconds": round(elapsed, 1)})
        if cfg.time_budget_s and elapsed + BUDGET_RESERVE_S >= cfg.time_budget_s:
            budget_hit = True
            if progress:
                progress({"event": "budget", "step": step, "elapsed_s": round(elapsed, 2)})
            break
    budget_hit = budget_hit or plan["total"] < cfg.steps
    encoder.eval()
    if base_state:  # WiSE-FT: interpolate the weights (floats only; integer buffers such as position ids stay)
        tuned_state = encoder.state_dict()
        encoder.load_state_dict({k: cfg.mix * v + (1.0 - cfg.mix) * base_state[k] if v.is_floating_point() else v
                                 for k, v in tuned_state.items()})
    tuned_s = time.perf_counter() - started

    # The head: the index head's logistic regression on the tuned, normalised embeddings.
    model = fit_head([*train_in, *train_oos], body, cfg.seed, c=cfg.head_c, origin=ORIGIN_STORE)
    threshold = model.threshold
    achieved = {"in_scope_accuracy": model.report.get("in_scope_accuracy"), "oos_recall": model.report.get("oos_recall")}
    val_acc: float | None = None
    macro_f1: float | None = None
    per_intent: dict[str, Any] = {}
    val_in = [e for e in val_in if e.intent in model.labels]  # (the split leaves every intent in train)
    second: SecondOpinion | None = None
    second_report: dict[str, Any] = {}
    if val_in:
        val_texts = [clean_text(e.text) for e in val_in]
        oos_texts = [clean_text(e.text) for e in val_oos]
        probs = model.scores(val_texts).probs
        oos_probs = model.scores(oos_texts).probs if val_oos else np.zeros((0, len(model.labels)))
        val_y = np.array([model.labels.index(e.intent) for e in val_in])
        if frozen is not None:
            second, second_report = second_opinion_for(FrozenHead(frozen.encoder, frozen.head, frozen_s),
                                                       probs, val_texts, val_y)
        if second is not None:  # the threshold and the validation figures describe the model as saved: mixed
            probs = second.mixed(probs, val_texts)
            oos_probs = second.mixed(oos_probs, oos_texts) if len(oos_probs) else oos_probs
        oos_best = oos_probs.max(1) if len(oos_probs) else np.zeros(0)
        pred = probs.argmax(1)
        correct = pred == val_y
        threshold, achieved = choose_threshold(probs.max(1), correct, oos_best, len(labels))
        val_acc = float(np.mean(correct))
        from sklearn.metrics import classification_report, f1_score

        present = sorted(set(val_y.tolist()) | set(pred.tolist()))
        rep = classification_report(val_y, pred, labels=present, target_names=[model.labels[i] for i in present],
                                    output_dict=True, zero_division=0)
        per_intent = {k: v for k, v in rep.items() if k in index}
        macro_f1 = float(f1_score(val_y, pred, average="macro", zero_division=0))
    if progress:
        progress({"event": "eval", "step": step, "epoch": 1, "val_accuracy": val_acc if val_acc is not None else float("nan")})
    refit = cfg.refit_head and val_examples is None and bool(val_in)  # a given --val set stays unseen
    if refit:
        # The threshold stays the one chosen on validation; the head now also learns from those rows.
        model = fit_head([*train_in, *val_in, *train_oos, *val_oos], body, cfg.seed, c=cfg.head_c, origin=ORIGIN_STORE)
        if second is not None:  # its head learns from those rows too; the weight stays the one chosen
            refitted = fit_head([*train_in, *val_in, *train_oos, *val_oos], second.encoder, cfg.seed, c=cfg.head_c)
            second = SecondOpinion(second.encoder, refitted.head, second.weight)

    report: dict[str, Any] = {
        "kind": "contrastive",
        "method": "contrastive",
        "base": base_id,
        "labels": len(labels),
        "train_examples": len(train_in),
        "train_oos_examples": len(train_oos),
        "val_examples": len(val_in),
        "val_oos_examples": len(val_oos),
        "val_source": val_source,
        "unknown_val_labels": unknown_val,
        "val_accuracy": val_acc,
        "val_macro_f1": macro_f1,
        "heldout_accuracy": model.report.get("heldout_accuracy"),
        "head_refitted_on_validation": refit,
        "second_opinion": second_report or None,
        "threshold": float(threshold),
        "in_scope_accuracy": achieved["in_scope_accuracy"],
        "oos_recall": achieved["oos_recall"],
        "first_loss": first_loss,
        "final_loss": last_loss,
        "best_step": step,
        "steps": step,
        "planned_steps": plan["total"],
        "epochs_run": 1 + (step * batch_size) // max(1, len(texts)),
        "stopped_early": False,
        "time_budget_s": cfg.time_budget_s,
        "stopped_by_budget": budget_hit,
        "body_seconds": round(tuned_s, 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        "history": history,
        "per_intent": per_intent,
        "config": asdict(cfg),
    }
    body.model_id = f"contrastive:{base_id}"
    final = IntentModel(body, model.head, float(threshold), "contrastive", origin=ORIGIN_STORE, report=report,
                        second_opinion=second)
    return TrainedIntentModel(model=final, val_in=list(val_in), val_oos=list(val_oos))

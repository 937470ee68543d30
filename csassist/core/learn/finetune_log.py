"""Learning from the feedback log: pairs -> LoRA adapter -> before/after check -> a saved, promoted version.

The steps live in one module each — :mod:`~csassist.core.learn.log_pairs` (data),
:mod:`~csassist.core.learn.lora_train` (training loop), :mod:`~csassist.core.learn.lora_eval`
(evaluation and the promotion rule) — and this module runs them in order.  Adapters are saved as
versions of :func:`csassist.core.learn.store.adapter_store` (adapter weights, ``metrics.json``,
``data_summary.json``, base model id); the rule's verdict decides promotion, ``force=True``
promotes regardless, and ``rollback`` pops the store's promotion stack (past the first promotion the
bare base model is used).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from csassist.core.learn.log_pairs import build_dataset
from csassist.core.learn.lora_eval import evaluate_generation, is_better
from csassist.core.learn.lora_train import Progress, TrainConfig, load_base, multi_process_without_gpu, train_lora
from csassist.core.learn.store import adapter_store

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.knowledge.embedder import Encoder
    from csassist.core.learn.feedback import FeedbackLog


def save_adapter(peft_model: Any, metrics: dict[str, Any], summary: dict[str, Any], out: Path | None = None) -> Path:
    """Save adapter weights, metrics.json and data_summary.json as a new store version, atomically."""
    headline = {k: metrics.get(k) for k in ("val_loss_before", "val_loss_after", "steps", "better")}
    with adapter_store(out).save(base=str(metrics.get("base_model") or ""), metrics=headline) as draft:
        peft_model.save_pretrained(str(draft.path))
        (draft.path / "metrics.json").write_text(
            json.dumps({**metrics, "version": draft.name}, indent=2), encoding="utf-8"
        )
        (draft.path / "data_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    assert draft.version is not None
    return draft.version.path


def rollback(out: Path | None = None) -> str | None:
    """Return to the previously promoted adapter; ``None`` means back to the bare base model."""
    version = adapter_store(out).rollback()
    return version.name if version else None


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
    accelerator = Accelerator(cpu=multi_process_without_gpu())
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
            adapter_store(out).promote(adapter_dir.name)
            reason = reason if better else f"forced: {reason}"
        result = FinetuneResult(dataset.summary, metrics, str(adapter_dir), promoted, reason)
    accelerator.wait_for_everyone()
    peft_model.unload()  # take the LoRA layers out again: a caller's loaded base model stays reusable
    return result

"""The learning loop's evaluation and promotion rule: greedy replies before/after the adapter.

Before and after: validation loss, and ROUGE-L / embedding cosine of greedy replies against the
held-out sent texts on a capped number of validation examples (generation is slow on CPU).

The promotion rule (:func:`is_better`): the new adapter is promoted when validation loss went *down*
and ROUGE-L did not drop by more than ``ROUGE_TOLERANCE`` (0.01 absolute; a few validation examples
are noisy, so a small dip must not veto a real loss gain, but a visible quality drop does).  With no
generation examples, loss alone decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from csassist.core.learn.log_pairs import Pair
from csassist.core.learn.lora_train import Progress

if TYPE_CHECKING:  # pragma: no cover
    from csassist.core.knowledge.embedder import Encoder

#: ROUGE-L may dip by this much (absolute) and still count as "not worse" (small, noisy samples).
ROUGE_TOLERANCE = 0.01


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
    from csassist.core.textmetrics import embedding_cosine, rouge_l

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

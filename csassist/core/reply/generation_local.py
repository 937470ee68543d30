"""The ``local`` backend: a transformers causal LM in this process, streamed token by token.

Why a hand-written decode loop instead of ``model.generate`` + ``TextIteratorStreamer``: the loop
runs in the caller's thread (no helper thread to leak or join), checks the cancel token before every
forward pass (so cancellation is exact to one token), and skips ``generate``'s per-step logits
processors and stopping-criteria machinery; bench/generation.py measures it against plain
``generate`` on the same model and prompt.

The model is loaded once (:meth:`LocalGenerator.from_settings`) and shared: generation holds a lock,
so concurrent callers are served one at a time; the pipeline cancels a stale turn so the lock is
released within one token.

Prefix caching (:mod:`csassist.core.reply.prefix_cache`): the KV caches of the last few prompts are
kept, keyed by their exact token ids, and a new prompt prefills only what follows the longest
prefix it shares with one of them.  :meth:`LocalGenerator.prime` computes the static system prefix
(persona, company, rules) when the model is loaded, so even a new conversation's first draft only
prefills its passages and messages.

Sampling: greedy at temperature 0, else temperature + nucleus (top-p 0.9) + a mild repetition
penalty on the tokens generated so far (not on the prompt: copying facts from the KB passages is
wanted), seeded per call so a suggestion is reproducible.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from typing import Any

from csassist.core.reply.models import LoadedModel, load_causal_lm
from csassist.core.reply.prefix_cache import DEFAULT_CAPACITY, PrefixCache
from csassist.core.reply.prompts import render_prompt
from csassist.core.types import CancelToken
from csassist.settings import GenerationSettings

TOP_P = 0.9
REPETITION_PENALTY = 1.15
#: Marks where a system message's given start ends in a rendered prompt (see :meth:`LocalGenerator.prime`).
_SENTINEL = "\u2063\u2063csassist-prefix-end\u2063\u2063"


class LocalGenerator:
    """Streams replies from a loaded transformers model (see module docstring)."""

    backend = "local"

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.model_id = loaded.model_id
        self.device = loaded.device
        self.dtype = loaded.dtype
        self._lock = threading.Lock()
        self.eos_ids = self._eos_ids()
        #: Token ids of the most recent reply (benchmarks compare them with ``model.generate``).
        self.last_tokens: list[int] = []
        #: Prefix caching (see the module docstring).  Benchmarks turn it off to compare like with like.
        self.prefix_cache = True
        self.prefixes = PrefixCache(DEFAULT_CAPACITY)
        #: Torch threads for the prefill only (0 = leave the process setting alone); decode stays on
        #: the process setting.  bench/generation.py measures 1 vs 2.
        self.prefill_threads = 0
        #: How many prompt tokens the last call took from the prefix cache.
        self.last_reused_tokens = 0
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        params = inspect.signature(self.model.forward).parameters
        # transformers 5.x renamed past_key_values -> cache; support both
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_arg = "logits_to_keep" in params

    @classmethod
    def from_settings(cls, gen: GenerationSettings) -> LocalGenerator:
        """Load the configured model (converting the bundled default once) with the configured threads."""
        from csassist.core.knowledge.embedder import configure_threads

        configure_threads(gen.threads or None)
        loaded = load_causal_lm(gen.model, device=gen.device, adapter=gen.adapter)
        return cls(loaded)

    # ------------------------------------------------------------------ helpers
    def _eos_ids(self) -> set[int]:
        """Every token id that ends a reply: config eos ids plus the chat template's end-of-turn token."""
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.model.config):
            eos = getattr(source, "eos_token_id", None)
            if isinstance(eos, int):
                ids.add(eos)
            elif isinstance(eos, (list, tuple)):
                ids.update(int(x) for x in eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        for token in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>"):
            tid = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid >= 0:
                ids.add(tid)
        return ids

    def count_tokens(self, text: str) -> int:
        """Exact token count under this model's tokenizer (used for the prompt budget)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def render(self, messages: list[dict[str, str]]) -> str:
        """The exact prompt text for ``messages`` (this model's chat template)."""
        return render_prompt(messages, self.tokenizer)

    def prime(self, system_start: str) -> int:
        """Compute and keep the KV cache of the rendered prompt up to the end of ``system_start``.

        ``system_start`` is the beginning of every system message (core.reply.prompts.static_prefix);
        once it is cached, a new conversation's first draft prefills only what follows it.  Returns
        the number of tokens cached (0 when caching is off or the text is empty).
        """
        import torch

        if not self.prefix_cache or not system_start.strip():
            return 0
        rendered = self.render([{"role": "system", "content": system_start + _SENTINEL}])
        cut = rendered.find(_SENTINEL)
        if cut <= 0:  # pragma: no cover - a chat template that drops or rewrites the system message
            return 0
        with self._lock, torch.inference_mode():
            ids = self.tokenizer(rendered[:cut], return_tensors="pt", add_special_tokens=False).input_ids
            ids = ids[:, : max(1, self.max_positions // 2)].to(self.device)
            with self._prefill_threads():
                out = self.model(input_ids=ids, use_cache=True)
            self.prefixes.store(ids[0].tolist(), self._cache_of(out))
            return int(ids.shape[1])

    def _prefill_threads(self) -> Any:
        """A context manager running the block on :attr:`prefill_threads` torch threads (if set)."""
        import contextlib

        import torch

        wanted = self.prefill_threads
        if wanted <= 0 or wanted == torch.get_num_threads():
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def switched() -> Iterator[None]:
            before = torch.get_num_threads()
            torch.set_num_threads(wanted)
            try:
                yield
            finally:
                torch.set_num_threads(before)

        return switched()

    # ------------------------------------------------------------------ generation
    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
        cancel: CancelToken,
    ) -> Iterator[str]:
        """Render ``messages`` with the chat template and stream the reply (see :meth:`stream_prompt`)."""
        return self.stream_prompt(
            self.render(messages), max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, cancel=cancel
        )

    def stream_prompt(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
        cancel: CancelToken,
    ) -> Iterator[str]:
        """Stream the continuation of an already rendered prompt, one decoded text piece per token.

        Stops at an end-of-turn token, after ``max_new_tokens``, or before the next forward pass once
        ``cancel`` is set (at most the token being computed is finished).
        """
        import torch

        with self._lock, torch.inference_mode():
            ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
            keep = max(16, self.max_positions - max_new_tokens)
            if ids.shape[1] > keep:
                ids = ids[:, -keep:]
            ids = ids.to(self.device)
            rng = torch.Generator(device="cpu").manual_seed(int(seed))
            if cancel.cancelled:
                return
            extra: dict[str, Any] = {"logits_to_keep": 1} if self._keep_arg else {}
            prompt_ids = ids[0].tolist()
            cached, reused = self.prefixes.lookup(prompt_ids) if self.prefix_cache else (None, 0)
            self.last_reused_tokens = reused
            if cached is not None:
                extra[self._cache_arg] = cached
            with self._prefill_threads():
                out = self.model(input_ids=ids[:, reused:], use_cache=True, **extra)
            past = self._cache_of(out)
            if self.prefix_cache:
                self.prefixes.store(prompt_ids, past)
            logits = out.logits[0, -1, :]
            produced: list[int] = []
            self.last_tokens = produced
            emitted = ""
            for _ in range(max_new_tokens):
                token = self._pick(logits, produced, temperature, rng)
                if token in self.eos_ids:
                    break
                produced.append(token)
                text = self.tokenizer.decode(produced, skip_special_tokens=True)
                if not text.endswith("\ufffd") and text.startswith(emitted) and len(text) > len(emitted):
                    piece, emitted = text[len(emitted) :], text
                    yield piece
                if cancel.cancelled:
                    return
                step = torch.tensor([[token]], device=self.device)
                out = self.model(input_ids=step, use_cache=True, **{self._cache_arg: past})
                past = self._cache_of(out)
                logits = out.logits[0, -1, :]

    def _cache_of(self, out: Any) -> Any:
        """The KV cache returned by a forward pass (attribute name depends on the transformers version)."""
        return getattr(out, self._cache_arg, None) if self._cache_arg == "cache" else out.past_key_values

    @staticmethod
    def _pick(logits: Any, produced: list[int], temperature: float, rng: Any) -> int:
        """Next token: argmax at temperature <= 0, else penalised, tempered nucleus sampling."""
        import torch

        if temperature <= 0:
            return int(torch.argmax(logits).item())
        scores = logits.float().clone()
        if produced and REPETITION_PENALTY != 1.0:
            seen = torch.tensor(sorted(set(produced)), device=scores.device)
            values = scores[seen]
            scores[seen] = torch.where(values > 0, values / REPETITION_PENALTY, values * REPETITION_PENALTY)
        probs = torch.softmax(scores / temperature, dim=-1)
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        cutoff = int(torch.searchsorted(cumulative, torch.tensor(TOP_P, device=cumulative.device)).item()) + 1
        kept = sorted_probs[:cutoff].cpu()
        choice = int(torch.multinomial(kept / kept.sum(), 1, generator=rng).item())
        return int(order[choice].item())

"""How each generated suggestion slot uses the model, and what it falls back to: pure rules, no model.

Why a module of its own: the choice of strategy decides reply quality (bench/reply_quality.py), and
the fallback order decides that no suggestion slot is ever left empty; both must be the same in the
app, ``csassist suggest`` and the benchmark, and testable without weights.

Strategies (``[generation] strategy``, one name per generated slot, the last one repeats):

* ``select`` — the extractive reply's KB sentences verbatim plus one model-written opening sentence,
  kept only when grounded (core.reply.rewrite).  Best measured quality and never an unsupported claim.
* ``rewrite`` — the model rewrites the extractive reply's KB sentences for this customer.
* ``free`` — the model writes the whole reply from the passages (the pre-issue-13 behaviour).

Fallback order when a strategy yields nothing usable (no grounded opening, an empty, too short,
repetitive or instruction-echoing text, a near-duplicate of an earlier draft, an error in one
draft): the slot's own strategy (``select``, which costs one short sentence, gets a second seed;
every strategy gets one on a near-duplicate), then the other generative strategies in the order of
:data:`FALLBACK_ORDER` (best measured first), then two model-free ones that always exist —
``extractive-alt`` (the extractive reply built from the next retrieved article, when one is
relevant enough) and finally ``extractive-copy`` (the lead's text again), so a slot is never empty.
Which strategy produced a draft, and why the earlier ones gave nothing, is kept in the suggestion's
``strategy`` and ``fallbacks``.  A backend failure (server down) and cancellation are not strategy
failures: they end the slot with an error the agent must see, as before.

The learning loop (:func:`training_strategy`): a LoRA adapter learns "prompt -> reply the agent
sent", so each logged suggestion must carry the prompt under which the model writes a *whole*
reply.  A slot whose model wrote the whole reply (``rewrite``, ``free``) stores its own prompt.  A
reply assembled from KB sentences (the extractive lead, ``select``, the model-free fallbacks) stores
the prompt of the configured full-reply strategy for the same turn — ``rewrite`` unless only
``free`` is configured — which is exactly what a ``rewrite`` slot of that turn sees at inference.
The ``select`` slot's one-sentence opening prompt gets no pairs of its own: the adapter shares
persona and tone with it, and an opening it makes worse is dropped by the grounding check, so the
adapter can change its wording but never let it add an unsupported claim.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Generative strategies a slot may be configured with.
STRATEGIES = ("free", "rewrite", "select")
#: The default: measured best (bench/results/reply_quality.json): slot 2 ``select``, slot 3 ``rewrite``
#: (a second ``select`` would differ from the first only in its opening sentence).
DEFAULT_STRATEGY = "select,rewrite"
#: Generative fallbacks, best measured first (ROUGE-L / cosine / unsupported claims on Bitext and the KB dev set).
FALLBACK_ORDER = ("select", "rewrite", "free")
#: Model-free last resorts, in order; the last one always produces text.
MODEL_FREE = ("extractive-alt", "extractive-copy")
#: Strategies whose model output is the whole reply (their own prompt is the training prompt).
WHOLE_REPLY = ("rewrite", "free")

#: Shorter model output than this (words) is not a reply.
MIN_WORDS = 3
#: A text of at least ``_REPEAT_MIN_WORDS`` words with fewer distinct words than this share is a loop.
MIN_DISTINCT_SHARE = 0.4
_REPEAT_MIN_WORDS = 10
#: Text that only appears when the model copies its instructions instead of replying.
#: Text that only appears when the model copies its instructions or talks about its task instead of replying
#: (seen on the KB dev set: "I'd like to revise this draft answer ...", "The customer message is a classic ...").
ECHO = re.compile(
    r"(\bdraft answer\b|knowledge[- ]base passages?\b|^rules:|\bopening sentence\b|\bcustomer(?:'s)? messages?\b"
    r"|rewrite the draft\b)",
    re.IGNORECASE | re.MULTILINE,
)
#: Strategies retried once with another seed when their text is unusable (cheap: one short sentence);
#: every strategy is retried once on a near-duplicate.
RETRY_UNUSABLE = ("select",)


def parse_strategies(setting: str) -> tuple[list[str], list[str]]:
    """``(per-slot strategies, unknown names)`` from the setting; unknown names become ``select``.

    An empty or all-unknown setting means :data:`DEFAULT_STRATEGY`: a typo in config.toml must
    give the measured best, not silently the worst.
    """
    names = [x.strip().lower() for x in setting.split(",") if x.strip()]
    unknown = [x for x in names if x not in STRATEGIES]
    known = [x if x in STRATEGIES else FALLBACK_ORDER[0] for x in names]
    if not known:
        known = DEFAULT_STRATEGY.split(",")
    return known, unknown


def slot_strategy(strategies: Sequence[str], slot: int) -> str:
    """The strategy of generated slot ``slot`` (1-based); the last configured one repeats."""
    return strategies[min(slot, len(strategies)) - 1]


def fallback_chain(strategy: str) -> tuple[str, ...]:
    """The order a slot configured with ``strategy`` tries: itself, other generative ones, model-free."""
    rest = tuple(x for x in FALLBACK_ORDER if x != strategy)
    return (strategy, *rest, *MODEL_FREE)


def training_strategy(strategies: Sequence[str]) -> str:
    """The whole-reply strategy whose prompt assembled replies are logged with (see the module docstring)."""
    if "rewrite" in strategies or not any(x in WHOLE_REPLY for x in strategies):
        return "rewrite"
    return "free"


def unusable_reason(text: str) -> str | None:
    """Why model output cannot be offered as a reply (``None`` when it can).

    Cheap, model-free checks for what a 135M model produces when it fails: nothing, a word or two, a
    loop of the same words, or a copy of its own instructions.  Unsupported *claims* are not a reason:
    the grounding check flags those, and a flagged draft never leads the list.
    """
    words = text.split()
    if not words:
        return "the model wrote nothing"
    if len(words) < MIN_WORDS:
        return f"too short ({len(words)} word{'s' if len(words) > 1 else ''})"
    if len(words) >= _REPEAT_MIN_WORDS and len({w.lower().strip('.,!?') for w in words}) / len(words) < MIN_DISTINCT_SHARE:
        return "repetitive"
    if ECHO.search(text):
        return "echoed its instructions"
    return None

"""What bench/generation.py prompts with: demo-KB passages, cold cases, customer messages and the prompt.

Kept apart from the timing code so the material every scenario shares is defined once: the cases
read the demo KB's articles directly (no index needed for a speed benchmark), and
:func:`build_prompt` goes through csassist's prompt builder -- or, ``legacy``, the old one in
bench/prompt_v1.py -- and the model's chat template, at the app's default token budget.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from csassist.core.types import Message, Passage

ROOT = Path(__file__).resolve().parent.parent


def kb_passages(names: list[str] | tuple[str, ...]) -> list[Passage]:
    """Demo-KB articles as passages, with their real titles and intents (no index needed for a speed bench)."""
    out = []
    for rank, name in enumerate(names):
        _, head, body = (ROOT / "kb" / "articles" / f"{name}.md").read_text(encoding="utf-8").split("---", 2)
        title = re.search(r"^title:\s*(.+)$", head, re.MULTILINE)
        intents = re.search(r"^intents:\s*\[(.*)\]", head, re.MULTILINE)
        out.append(Passage(f"{name}#0", name, title.group(1).strip() if title else name.replace("-", " "),
                           body.strip(), f"{name}.md", round(0.8 - 0.1 * rank, 2),
                           tuple(x.strip() for x in intents.group(1).split(",") if x.strip()) if intents else ()))
    return out


def demo_passages() -> list[Passage]:
    """The three refund articles every benchmark prompt used so far."""
    return kb_passages(("damaged-item-refund", "refund-timelines", "how-to-return-an-item"))


def unseen_cases(n: int) -> list[tuple[str, list[Passage]]]:
    """``n`` cold cases: a question from a demo-KB article's front matter, with that article and the
    next two (alphabetically) as the retrieved passages; no article is in two cases while the KB lasts."""
    names = sorted(p.stem for p in (ROOT / "kb" / "articles").glob("*.md"))
    cases = []
    for i in range(n):
        picked = [names[(3 * i + j) % len(names)] for j in range(3)]
        head = (ROOT / "kb" / "articles" / f"{picked[0]}.md").read_text(encoding="utf-8").split("---", 2)[1]
        questions = re.findall(r"^\s+-\s+(.+)$", head.split("questions:", 1)[-1], re.MULTILINE)
        question = questions[0].strip().strip("'\"") if questions else picked[0].replace("-", " ") + "?"
        cases.append((f"{question} (ticket {i})" if i >= len(names) // 3 else question, kb_passages(picked)))
    return cases


#: Customer messages for the first-token runs: each run is a conversation the cache has not seen.
NEW_MESSAGES = (
    "my order 12345 arrived broken, the vase is in pieces. I want a refund please",
    "the lamp I got on monday has a crack in the base, can I get my money back?",
    "parcel came today and the mug is smashed. how do I get a refund?",
    "my chair arrived with a broken leg (order 55555), what now?",
    "two of the six plates were chipped when I opened the box. can you refund them?",
    "I sent the broken teapot back last week, when will I see the refund on my card?",
)
HISTORY = (
    Message("b", "customer", "Hi, I have a problem with a delivery from last week."),
    Message("b", "agent", "Hi! I'm sorry to hear that. What happened?"),
)
#: The app's default prompt budget ([generation] prompt_token_budget): both paths are measured at it.
BENCH_BUDGET = 1024
#: The budget that gave the issue's 419-token "today" prompt (one passage, no history): also measured.
ISSUE_BUDGET = 470


def build_prompt(
    tokenizer: Any, message: str = "", *, legacy: bool = False, history: tuple[Message, ...] = HISTORY,
    budget: int = BENCH_BUDGET, passages: list[Passage] | None = None,
) -> tuple[str, int]:
    """The benchmark prompt through csassist's prompt builder (or today's, ``legacy``) and chat template."""
    from bench.prompt_v1 import build_messages_v1
    from csassist.core.reply.prompts import build_messages, render_prompt
    from csassist.settings import CompanySettings

    builder = build_messages_v1 if legacy else build_messages
    count = lambda t: len(tokenizer.encode(t, add_special_tokens=False))  # noqa: E731
    msgs = builder(
        message or NEW_MESSAGES[0],
        list(history),
        passages if passages is not None else demo_passages(),
        None,
        CompanySettings(),
        token_budget=budget,
        count_tokens=count,
    )
    prompt = render_prompt(msgs, tokenizer)
    return prompt, len(tokenizer(prompt, add_special_tokens=False).input_ids)

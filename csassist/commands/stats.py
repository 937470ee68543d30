"""`csassist stats`: how the suggestions are doing, from the feedback log.

Tables (rich) by default, ``--json`` for scripts; the numbers come from
:func:`csassist.core.learn.stats.compute_stats`, the same function the TUI's stats screen uses.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``stats`` and its options."""
    p = sub.add_parser("stats", help="acceptance rates, edit distance and latency from the feedback log")
    p.add_argument("--log", metavar="PATH", help="feedback log (default: the user data dir)")
    p.add_argument("--store", metavar="URL",
                   help="the team store (postgresql://...; default: [store] url, else the local log)")
    p.add_argument("--agent", metavar="ID", help="only this agent's events")
    p.add_argument("--days", type=int, help="only the last N days")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")


def _fmt_pct(value: float | None) -> str:
    """A share as a percentage, or a dash."""
    return "-" if value is None else f"{100 * value:.1f}%"


def _fmt_num(value: float | None, digits: int = 1) -> str:
    """A number, or a dash."""
    return "-" if value is None else f"{value:.{digits}f}"


def _spark(values: list[float]) -> str:
    """A one-line unicode sparkline (rich has none built in)."""
    bars = "▁▂▃▄▅▆▇█"
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(bars[min(len(bars) - 1, int(v / top * (len(bars) - 1)))] for v in values)


def run(args: argparse.Namespace) -> int:
    """Compute and print the statistics."""
    import json
    import time
    from pathlib import Path

    from csassist.commands.common import open_workspace
    from csassist.core.learn.feedback import FeedbackLog
    from csassist.core.learn.stats import compute_stats

    workspace = open_workspace(quiet=False)
    since = time.time() - args.days * 86400 if args.days else None
    url = getattr(args, "store", None) or (None if args.log else workspace.settings.store.url or None)
    log = FeedbackLog(url=url) if url else FeedbackLog(Path(args.log) if args.log else workspace.feedback_path)
    with log:
        stats = compute_stats(log, since=since, agent_id=getattr(args, "agent", None))
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
        return 0

    from rich.console import Console
    from rich.table import Table

    from csassist.core.learn.stats import GroupStats

    console = Console()
    if not stats.total:
        console.print("No suggestions logged yet: accept, edit or reject some in the app first.")
        return 0

    def group_table(title: str, groups: dict[str, GroupStats], label: str) -> Table:
        table = Table(title=title, title_justify="left")
        for column in (label, "shown", "as-is", "edited", "rejected", "ignored", "edit dist", "p50 ms", "p95 ms",
                       "reply p50 s"):
            table.add_column(column, justify="left" if column == label else "right")
        for name, g in groups.items():
            table.add_row(
                name,
                str(g.total),
                _fmt_pct(g.rates["accepted"]),
                _fmt_pct(g.rates["edited"]),
                _fmt_pct(g.rates["rejected"]),
                _fmt_pct(g.rates["ignored"]),
                _fmt_num(g.mean_edit_distance),
                _fmt_num(g.latency_ms.p50, 0),
                _fmt_num(g.latency_ms.p95, 0),
                _fmt_num(g.time_to_reply_s.p50),
            )
        return table

    console.print(group_table("Overall", {"all": stats}, ""))
    console.print(group_table("By intent", stats.by_intent, "intent"))
    console.print(group_table("By backend:model", stats.by_model, "backend:model"))
    if len(stats.by_agent) > 1 or url:
        console.print(group_table("By agent", stats.by_agent, "agent"))
        console.print(group_table("By model versions", stats.by_model_versions, "models"))
    if stats.reject_reasons:
        reasons = Table(title="Reject reasons", title_justify="left")
        reasons.add_column("reason")
        reasons.add_column("count", justify="right")
        for reason, count in stats.reject_reasons.items():
            reasons.add_row(reason, str(count))
        console.print(reasons)
    daily = stats.daily
    if daily:
        console.print(
            f"per day {daily[0].day}..{daily[-1].day}  shown {_spark([d.total for d in daily])}  "
            f"accepted {_spark([d.acceptance_rate for d in daily])}",
            markup=False,
        )
    console.print(f"intent corrections: {stats.intent_corrections}", markup=False)
    return 0

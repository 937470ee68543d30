"""`csassist search "text"`: the top KB passages for a question, as a table or one JSON object.

Handy to check what the assistant will ground its replies on, and scriptable with ``--json``.
"""

from __future__ import annotations

import argparse
import re


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``search`` and its options."""
    p = sub.add_parser("search", help="search the knowledge-base index")
    p.add_argument("query", help="the question, in the customer's words")
    p.add_argument("-k", type=int, default=None, help="number of hits (default: [retrieval] top_k, 5)")
    p.add_argument("--json", action="store_true", help='print {"hits": [...]} as one JSON object')
    p.add_argument("--index", metavar="DIR", help="index directory (default: the one `csassist index` writes)")


def snippet(text: str, width: int = 160) -> str:
    """One line of at most ``width`` characters without Markdown markers, cut at a word boundary."""
    plain = re.sub(r"(?m)^\s*#{1,6}\s+", "", text).replace("**", "").replace("__", "")
    flat = " ".join(plain.split())
    if len(flat) <= width:
        return flat
    cut = flat[: width - 1].rsplit(" ", 1)[0]
    return cut + "…"


def run(args: argparse.Namespace) -> int:
    """Open the index (validated against its manifest), search, print."""
    import sys
    from pathlib import Path

    from csassist.cli import EXIT_USAGE
    from csassist.commands.common import open_workspace
    from csassist.core.errors import CsassistError
    from csassist.core.sanitize import safe_line, terminal_safe_json
    from csassist.core.textnorm import normalize_text

    workspace = open_workspace()
    k = args.k if args.k is not None else workspace.settings.retrieval.top_k
    if k < 1:
        print("csassist search: -k must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    workspace.configure_threads()
    index_dir = Path(args.index).expanduser() if args.index else workspace.index_dir
    try:  # the query read as the app reads messages (configured embedder, runtime, precision) ...
        retriever = workspace.open_retriever(workspace.query_encoder(), index_dir)
    except CsassistError:  # ... else the embedder the index names (an index built with another one)
        retriever = workspace.open_retriever(index_dir=index_dir)
    query = normalize_text(args.query)  # invalid UTF-8 in argv arrives as surrogate escapes
    hits = retriever.search(query, k=k)

    if args.json:
        payload = {
            "hits": [
                {
                    "id": h.article_id,
                    "chunk_id": h.chunk_id,
                    "title": h.title,
                    "score": round(h.score, 4),
                    "text": h.text,
                    "matched_sentence": h.evidence,
                    "source": h.source,
                }
                for h in hits
            ]
        }
        sys.stdout.write(terminal_safe_json(payload) + "\n")
        return 0

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not hits:
        console.print("No hits (empty query or empty index).")
        return 0
    table = Table(title=Text(f"search: {safe_line(query)}"), title_justify="left")
    for column in ("#", "score", "article", "title", "snippet", "source"):
        table.add_column(column, justify="right" if column in ("#", "score") else "left")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(
            str(rank),
            f"{hit.score:.3f}",
            Text(safe_line(hit.article_id)),  # KB text is untrusted: no escape reaches the terminal
            Text(safe_line(hit.title)),
            Text(safe_line(snippet(hit.text))),
            Text(safe_line(hit.source)),
        )
    console.print(table)
    return 0

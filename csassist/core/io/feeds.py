"""Which message source a ``--source`` value means: the demo replay, stdin, or a JSONL file.

Kept apart from :mod:`csassist.core.io.sources` (the file and stdin readers) and
:mod:`csassist.core.io.demo_replay` (which builds on those readers) so that choosing among them
does not make the two modules import each other.
"""

from __future__ import annotations

from pathlib import Path

from csassist.core.errors import CsassistError
from csassist.core.io.demo_replay import DemoReplay
from csassist.core.io.sources import JsonlFileSource, ProblemSink, StdinSource, ThreadedSource


def source_from_args(
    source: str | None,
    *,
    follow: bool = False,
    speed: float = 1.0,
    on_problem: ProblemSink | None = None,
) -> ThreadedSource:
    """The source for the CLI's ``--source`` value: ``None`` -> demo, ``"-"`` -> stdin, else a file."""
    if source is None:
        return DemoReplay(speed=speed, on_problem=on_problem)
    if source == "-":
        if follow:
            raise CsassistError("--follow applies to --source FILE, not to stdin (stdin is always read to its end)")
        return StdinSource(on_problem=on_problem)
    return JsonlFileSource(Path(source).expanduser(), follow=follow, on_problem=on_problem)

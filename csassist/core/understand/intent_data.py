"""Reading labelled intent files (CSV or JSONL) into :class:`IntentExample` lists.

Training (``csassist finetune --intents``), evaluation (``csassist eval intents``) and the benchmarks
all read the same formats, so the rules live in one place: a text column ``text`` (or ``utterance``)
and a label column ``label``, ``intent`` or ``category`` (banking77's header).  The label ``oos``
marks out-of-scope examples.  Bad rows are reported with file and line; a file with nothing usable
is a :class:`DataError`.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from csassist.core.errors import DataError
from csassist.core.textnorm import normalize_text
from csassist.core.types import IntentExample

OOS_LABEL = "oos"
TEXT_COLUMNS = ("text", "utterance", "instruction", "message")
LABEL_COLUMNS = ("label", "intent", "category")


def _pick(columns: Sequence[str], wanted: Sequence[str]) -> str | None:
    """The first of ``wanted`` present in ``columns`` (case-insensitive), as spelled in the file."""
    lowered = {c.strip().lower(): c for c in columns if c}
    for name in wanted:
        if name in lowered:
            return lowered[name]
    return None


def load_labelled_file(path: Path) -> tuple[list[IntentExample], list[str]]:
    """Read ``path`` (``.csv``/``.tsv``/``.jsonl``) and return ``(examples, problems)``.

    Rows with an empty text or label are skipped and listed in ``problems`` (``file:line: why``)
    rather than failing the whole file: one bad line in 10,000 should not stop training.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a .csv or .jsonl file")
    suffix = path.suffix.lower()
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    if suffix in (".jsonl", ".json", ".ndjson"):
        examples, problems = _read_jsonl(path, raw)
    else:
        examples, problems = _read_csv(path, raw, delimiter="\t" if suffix == ".tsv" else ",")
    if not examples:
        detail = f" ({problems[0]})" if problems else ""
        raise DataError(f"{path}: no usable labelled rows{detail}")
    return examples, problems


def _read_csv(path: Path, raw: str, delimiter: str) -> tuple[list[IntentExample], list[str]]:
    """CSV with a header naming a text and a label column."""
    reader = csv.reader(raw.splitlines(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise DataError(f"{path}: empty file") from exc
    text_col = _pick(header, TEXT_COLUMNS)
    label_col = _pick(header, LABEL_COLUMNS)
    if text_col is None or label_col is None:
        raise DataError(
            f"{path}:1: header {header!r} needs a text column ({'/'.join(TEXT_COLUMNS)}) "
            f"and a label column ({'/'.join(LABEL_COLUMNS)})"
        )
    ti, li = header.index(text_col), header.index(label_col)
    examples: list[IntentExample] = []
    problems: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(ti, li):
            problems.append(f"{path}:{line_no}: expected at least {max(ti, li) + 1} columns, got {len(row)}")
            continue
        _append(examples, problems, path, line_no, row[ti], row[li])
    return examples, problems


def jsonl_objects(path: Path, raw: str, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each JSON object line of ``raw``; other lines become a problem."""
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{line_no}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{line_no}: expected a JSON object")
            continue
        yield line_no, obj


def _read_jsonl(path: Path, raw: str) -> tuple[list[IntentExample], list[str]]:
    """One JSON object per line with a text and a label key."""
    examples: list[IntentExample] = []
    problems: list[str] = []
    for line_no, obj in jsonl_objects(path, raw, problems):
        tk = _pick(list(obj), TEXT_COLUMNS)
        lk = _pick(list(obj), LABEL_COLUMNS)
        if tk is None or lk is None:
            problems.append(f"{path}:{line_no}: needs keys text and label")
            continue
        _append(examples, problems, path, line_no, str(obj[tk] or ""), str(obj[lk] or ""))
    return examples, problems


def _append(
    examples: list[IntentExample], problems: list[str], path: Path, line_no: int, text: str, label: str
) -> None:
    """Validate one row and keep it, or note why not (JSON escapes can hide lone surrogates: normalise)."""
    text, label = normalize_text(text).strip(), normalize_text(label).strip()
    if not text:
        problems.append(f"{path}:{line_no}: empty text (skipped)")
    elif not label:
        problems.append(f"{path}:{line_no}: empty label (skipped)")
    else:
        examples.append(IntentExample(text=text, intent=label, source=str(path), line=line_no))


def check_trainable(examples: Sequence[IntentExample], *, min_per_class: int = 1) -> Counter[str]:
    """Raise :class:`DataError` unless there are at least two in-scope intents; return label counts.

    A classifier needs two classes to separate; ``oos`` rows do not count as a class.
    """
    counts = Counter(e.intent for e in examples if e.intent != OOS_LABEL)
    if not counts:
        raise DataError("no in-scope examples: every row is labelled 'oos' (or the data is empty)")
    if len(counts) < 2:
        only = next(iter(counts))
        raise DataError(f"only one intent ({only!r}) in the data: a classifier needs at least two intents")
    few = [label for label, n in counts.items() if n < min_per_class]
    if few:
        raise DataError(
            f"{len(few)} intent(s) have fewer than {min_per_class} examples, e.g. {few[0]!r}: add examples"
        )
    return counts

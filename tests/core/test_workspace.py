"""The workspace turns settings into the engine the same way for every client."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from csassist.core import workspace as ws_module
from csassist.core.knowledge import embedder
from csassist.core.workspace import Workspace
from csassist.settings import GenerationSettings, RetrievalSettings, Settings
from tests.fakes import FakeEncoder

FIXTURE_KB = Path(__file__).resolve().parent.parent / "ui" / "fixtures" / "kb"


@pytest.fixture
def fake_loading(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeEncoder]:
    """Make ``load_encoder`` hand out fake encoders keyed by the requested name (records every request)."""
    made: dict[str, FakeEncoder] = {}

    def load(name: str | None = None, **_runtime: object) -> FakeEncoder:
        key = name or "default"
        made.setdefault(key, FakeEncoder(model_id=key))
        return made[key]

    monkeypatch.setattr(embedder, "load_encoder", load)
    return made


def settings_for(tmp_path: Path, *, embedder_name: str = "", backend: str = "extractive") -> Settings:
    """The fixture KB, an index under ``tmp_path`` and the given embedder/backend."""
    return Settings(
        retrieval=RetrievalSettings(kb_dir=str(FIXTURE_KB), index_dir=str(tmp_path / "index"), embedder=embedder_name),
        generation=GenerationSettings(backend=backend),
    )


def test_encoder_respects_the_configured_embedder(tmp_path: Path, fake_loading: dict[str, FakeEncoder]) -> None:
    assert Workspace(settings_for(tmp_path, embedder_name="my-encoder")).encoder().model_id == "my-encoder"
    assert Workspace(settings_for(tmp_path)).encoder().model_id == "default"
    assert Workspace(settings_for(tmp_path)).encoder("override").model_id == "override"


def test_ensure_index_builds_once_and_the_assistant_uses_it(tmp_path: Path, fake_loading: dict[str, FakeEncoder]) -> None:
    workspace = Workspace(settings_for(tmp_path, embedder_name="my-encoder"))
    assert workspace.index_missing()
    built = workspace.ensure_index()
    assert built is not None and built.report.chunks == 3 and built.intents.status == "fitted"
    assert "KB indexed: 3 chunks from 3 articles" in built.summary() and "intent model fitted" in built.summary()
    assert workspace.ensure_index() is None  # already there: nothing rebuilt
    # An out-of-scope detector written by an older csassist is refitted, not left to be refused at load.
    stale = workspace.index_dir / "oos" / "meta.json"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text('{"format": 2}', encoding="utf-8")
    assert workspace.index_outdated()
    rebuilt = workspace.ensure_index()
    assert rebuilt is not None and rebuilt.report.chunks == 3 and not workspace.index_outdated()
    assert workspace.ensure_index() is None
    assistant = workspace.assistant()
    assert assistant.warnings == []
    info = assistant.describe()
    assert (info.embedder, info.index, info.backend) == ("my-encoder", "loaded", "extractive")
    assert assistant.retrieve("my parcel never arrived")[0].article_id == "missing-parcel"
    assert sorted(assistant.intent_labels) == sorted(set(assistant.intent_labels)) and assistant.intent_labels


def test_a_head_fitted_with_another_embedder_is_refused_with_advice(
    tmp_path: Path, fake_loading: dict[str, FakeEncoder]
) -> None:
    Workspace(settings_for(tmp_path)).ensure_index()  # default embedder
    assistant = Workspace(settings_for(tmp_path, embedder_name="another")).assistant()
    assert assistant.retriever is None and assistant.intent_model is None
    assert any("run `csassist index`" in w for w in assistant.warnings)


def test_assistant_degrades_with_warnings_and_never_repeats_config_warnings(
    tmp_path: Path, fake_loading: dict[str, FakeEncoder]
) -> None:
    settings = dataclasses.replace(settings_for(tmp_path, backend="server"), warnings=("config.toml: unknown key x",))
    workspace = Workspace(settings)
    assert workspace.warnings == ("config.toml: unknown key x",)
    assistant = workspace.assistant()
    assert assistant.generator is None and assistant.retriever is None
    assert any("no usable KB index" in w for w in assistant.warnings)
    assert any("generator unavailable" in w for w in assistant.warnings)
    assert not any("unknown key" in w for w in assistant.warnings)
    no_generator = workspace.assistant(generator=None)
    assert not any("generator" in w for w in no_generator.warnings)


def test_with_backend_changes_only_the_backend(tmp_path: Path) -> None:
    workspace = Workspace(settings_for(tmp_path, backend="local"))
    other = workspace.with_backend("extractive")
    assert other.settings.generation.backend == "extractive"
    assert other.settings.retrieval == workspace.settings.retrieval
    assert workspace.settings.generation.backend == "local"


def test_bad_index_type_is_a_clear_error(tmp_path: Path, fake_loading: dict[str, FakeEncoder]) -> None:
    from csassist.core.errors import CsassistError

    with pytest.raises(CsassistError, match="unsupported index type 'bogus'"):
        Workspace(settings_for(tmp_path)).build_index(index_type="bogus")


def test_warm_up_never_raises() -> None:
    class Broken:
        def analyze(self, *args: object) -> None:
            raise RuntimeError("boom")

    ws_module.warm_up(Broken())  # type: ignore[arg-type]

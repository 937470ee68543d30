"""The server backend and its model listing against fakes of llama.cpp, llama-cpp-python, Ollama and vLLM.

The fakes (tests/fake_llm_servers.py) answer the way each server documents: these tests pin what the
agent sees for each flavour's quirks — streaming, unknown model names, keys, cut-off streams, slow
first bytes.
"""

from __future__ import annotations

import pytest

from csassist.core.errors import BackendError
from csassist.core.reply.generation_server import ServerGenerator
from csassist.core.types import CancelToken
from tests.fake_llm_servers import FakeLLMServer

MSGS = [
    {"role": "system", "content": "be nice"},
    {"role": "user", "content": "<customer_message>\nmy parcel arrived damaged\n</customer_message>"},
]

#: flavour -> (models the server holds, the name csassist is configured with)
SETUPS = {
    "llama.cpp": (["qwen2.5-1.5b-instruct-q4_k_m.gguf"], "qwen2.5-1.5b-instruct-q4_k_m.gguf"),
    "llama-cpp-python": (["/models/qwen2.5-1.5b-instruct-q4_k_m.gguf"], ""),
    "ollama": (["qwen2.5:1.5b-instruct", "llama3.2:latest"], "qwen2.5:1.5b-instruct"),
    "vllm": (["Qwen/Qwen2.5-1.5B-Instruct"], "Qwen/Qwen2.5-1.5B-Instruct"),
}


def draft(gen: ServerGenerator) -> str:
    return "".join(gen.stream(MSGS, max_new_tokens=60, temperature=0.2, seed=1, cancel=CancelToken()))


@pytest.mark.parametrize("flavour", list(SETUPS))
def test_each_flavour_streams_a_whole_draft_and_lists_its_models(flavour: str) -> None:
    models, configured = SETUPS[flavour]
    with FakeLLMServer(flavour, models) as srv:
        gen = ServerGenerator(srv.url, model=configured, timeout_s=5)
        assert draft(gen) == srv.cfg.reply
        post = [r for r in srv.cfg.requests if r["method"] == "POST"][0]
        assert post["path"] == "/v1/chat/completions" and post["body"]["stream"] is True
        assert post["body"].get("model", "") == configured
        offered = gen.list_models()
        assert offered.ids() == models and offered.endpoint == "/v1/models"
        assert offered.flavour == {"llama-cpp-python": "openai-compatible"}.get(flavour, flavour)
        assert offered.status_of(configured) == ("present" if configured else "unset")


def test_llama_cpp_serves_its_one_model_whatever_name_is_asked() -> None:
    with FakeLLMServer("llama.cpp", ["smollm2.gguf"]) as srv:
        gen = ServerGenerator(srv.url, model="qwen2.5:1.5b-instruct", timeout_s=5)
        assert draft(gen) == srv.cfg.reply
        offered = gen.list_models()
        assert offered.status_of(gen.model) == "missing"
        assert "answers every request with its one model (smollm2.gguf)" in (offered.note_for(gen.model) or "")


def test_ollama_unknown_model_names_the_model_and_what_is_pulled() -> None:
    with FakeLLMServer("ollama", ["qwen2.5:1.5b-instruct", "llama3.2:latest"]) as srv:
        gen = ServerGenerator(srv.url, model="qwen2.5:7b", timeout_s=5)
        with pytest.raises(BackendError) as err:
            draft(gen)
        text = str(err.value)
        assert "has no model 'qwen2.5:7b'" in text and "try pulling it first" in text
        assert "it offers: qwen2.5:1.5b-instruct, llama3.2:latest" in text and "CSASSIST_SERVER_MODEL" in text
        # a name without a tag is :latest on Ollama, both on the server and in the status
        assert ServerGenerator(srv.url, model="llama3.2", timeout_s=5).list_models().status_of("llama3.2") == "present"
        assert draft(ServerGenerator(srv.url, model="llama3.2", timeout_s=5)) == srv.cfg.reply
        # Ollama needs a model name at all
        with pytest.raises(BackendError, match=r"no model named.*model is required.*it offers"):
            draft(ServerGenerator(srv.url, timeout_s=5))


def test_ollama_without_v1_models_falls_back_to_api_tags() -> None:
    with FakeLLMServer("ollama", ["qwen2.5:1.5b-instruct"], old_ollama=True) as srv:
        offered = ServerGenerator(srv.url, timeout_s=5).list_models()
        assert offered.endpoint == "/api/tags" and offered.flavour == "ollama"
        assert offered.ids() == ["qwen2.5:1.5b-instruct"]


def test_url_without_v1_says_so() -> None:
    with FakeLLMServer("ollama", ["qwen2.5:1.5b-instruct"]) as srv:
        gen = ServerGenerator(srv.root, model="qwen2.5:1.5b-instruct", timeout_s=5)
        with pytest.raises(BackendError, match=r"HTTP 404 \(404 page not found\): no chat endpoint there; does server_url end in /v1"):
            draft(gen)


def test_vllm_lora_modules_are_listed_with_their_base_and_usable_by_name() -> None:
    base = "Qwen/Qwen2.5-1.5B-Instruct"
    with FakeLLMServer("vllm", [base], lora={"csassist": "/srv/adapters/v3"}) as srv:
        gen = ServerGenerator(srv.url, model="csassist", timeout_s=5)
        offered = gen.list_models()
        assert [(m.id, m.parent) for m in offered.models] == [(base, None), ("csassist", base)]
        assert offered.status_of("csassist") == "present"
        assert draft(gen) == srv.cfg.reply
        wrong = ServerGenerator(srv.url, model="csassist-v2", timeout_s=5)
        assert wrong.list_models().status_of("csassist-v2") == "missing"
        with pytest.raises(BackendError) as err:
            draft(wrong)
        assert "has no model 'csassist-v2'" in str(err.value) and "The model `csassist-v2` does not exist." in str(err.value)
        assert f"it offers: {base}, csassist" in str(err.value)


@pytest.mark.parametrize("flavour", ["llama.cpp", "llama-cpp-python", "vllm"])
def test_missing_or_wrong_key_is_a_clear_401(flavour: str) -> None:
    with FakeLLMServer(flavour, ["m"], api_key="right") as srv:
        with pytest.raises(BackendError, match=r"HTTP 401 \(unauthorised\): the server wants an API key: set CSASSIST_SERVER_KEY"):
            draft(ServerGenerator(srv.url, model="m", timeout_s=5))
        with pytest.raises(BackendError, match=r"HTTP 401 \(unauthorised\): the key in CSASSIST_SERVER_KEY.*was refused"):
            draft(ServerGenerator(srv.url, model="m", api_key="wrong", timeout_s=5))
        assert draft(ServerGenerator(srv.url, model="m", api_key="right", timeout_s=5)) == srv.cfg.reply
        assert srv.cfg.requests[-1]["auth"] == "Bearer right"
        listing = ServerGenerator(srv.url, model="m", timeout_s=5)
        if flavour == "llama.cpp":  # llama-server keeps /v1/models public
            assert listing.list_models().ids() == ["m"]
        else:
            with pytest.raises(BackendError, match="unauthorised"):
                listing.list_models()


@pytest.mark.parametrize("flavour", ["llama.cpp", "llama-cpp-python", "ollama", "vllm"])
def test_a_stream_cut_off_mid_reply_is_an_error_not_a_short_draft(flavour: str) -> None:
    models, configured = SETUPS[flavour]
    with FakeLLMServer(flavour, models, cut_after=3) as srv:
        gen = ServerGenerator(srv.url, model=configured, timeout_s=5)
        got: list[str] = []
        with pytest.raises(BackendError, match=r"(closed the stream mid-reply|stopped responding) after 3 pieces"):
            for piece in gen.stream(MSGS, max_new_tokens=60, temperature=0.2, seed=1, cancel=CancelToken()):
                got.append(piece)
        assert "".join(got) == " ".join(srv.cfg.reply.split(" ")[:3])


def test_slow_first_byte_within_and_beyond_the_configured_timeout() -> None:
    with FakeLLMServer("vllm", ["m"], first_byte_delay=0.6) as srv:
        assert draft(ServerGenerator(srv.url, model="m", timeout_s=3)) == srv.cfg.reply
        with pytest.raises(BackendError, match=r"no answer within 0.2 s \(raise \[generation\] server_timeout_s"):
            draft(ServerGenerator(srv.url, model="m", timeout_s=0.2))


def test_slow_pieces_past_the_timeout_stop_the_draft_with_a_reason() -> None:
    with (
        FakeLLMServer("llama.cpp", ["m"], piece_delay=0.5) as srv,
        pytest.raises(BackendError, match=r"stopped responding after 1 pieces: timed out"),
    ):
        draft(ServerGenerator(srv.url, model="m", timeout_s=0.2))


def test_unreachable_server_listing_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match=rf"cannot reach the generation server at http://127.0.0.1:{port}/v1/models: connection refused"):
        ServerGenerator(f"http://127.0.0.1:{port}/v1", timeout_s=2).list_models()


def _readme_recipes() -> list[str]:
    """The ``[generation]`` blocks of the README's "Bigger models" recipes, in order."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("### Bigger models, one setting away", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```toml\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize(
    ("index", "flavour", "served"),
    [
        (0, "llama.cpp", ["qwen2.5-1.5b-instruct-q4_k_m.gguf"]),
        (1, "ollama", ["qwen2.5:1.5b-instruct"]),
        (2, "vllm", ["Qwen/Qwen2.5-1.5B-Instruct"]),
    ],
)
def test_readme_recipes_load_cleanly_and_work_against_their_server(
    index: int, flavour: str, served: list[str], tmp_path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """Each recipe's config lines parse without warnings and, pointed at that server, produce a draft."""
    from urllib.parse import urlsplit

    from csassist.core.reply.generation import load_generator
    from csassist.settings import load_settings

    for name in ("CSASSIST_SERVER_URL", "CSASSIST_SERVER_MODEL", "CSASSIST_SERVER_KEY", "CSASSIST_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.toml"
    config.write_text(_readme_recipes()[index], encoding="utf-8")
    settings = load_settings(config)
    gen = settings.generation
    assert settings.warnings == () and gen.backend == "server"
    recipe_url = urlsplit(gen.server_url)
    assert recipe_url.path == "/v1"
    lora = {"csassist": "/srv/adapters/v0003"} if flavour == "vllm" else {}
    key = "sk-team" if flavour == "vllm" else ""  # the vLLM recipe runs with --api-key
    with FakeLLMServer(flavour, served, lora=lora, api_key=key) as srv:
        import dataclasses

        port = urlsplit(srv.url).port
        pointed = dataclasses.replace(
            settings, generation=dataclasses.replace(
                gen, server_url=f"http://127.0.0.1:{port}{recipe_url.path}", server_api_key=key)
        )
        client = load_generator(pointed)
        assert isinstance(client, ServerGenerator)
        assert client.list_models().status_of(gen.server_model) == "present"
        assert draft(client) == srv.cfg.reply

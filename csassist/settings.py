"""User configuration: ``config.toml`` in the config dir, every key optional.

The file is read once at start-up into frozen dataclasses so the rest of the code gets typed values
and never looks at raw dicts.  Unknown keys are reported (a typo should not pass silently) but do not
stop the app.  Environment variables win over the file for secrets (``CSASSIST_SERVER_KEY``) and for
the server URL, so keys need not be written to disk.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csassist import paths


@dataclass(frozen=True)
class CompanySettings:
    """Who the agent speaks for: used in prompts and the extractive reply's greeting/closing."""

    name: str = "Larkspur & Co."
    agent_name: str = ""
    persona: str = (
        "You are a friendly, concise customer-service agent for Larkspur & Co., an online shop for "
        "home goods. Answer only from the knowledge-base passages; if they do not cover the question, "
        "say you will check and get back. Never invent order numbers, amounts or links."
    )
    tone: str = "warm, clear, professional; short paragraphs; no emojis"
    #: Extra regexes for this company's order / tracking numbers (entities issue).
    order_patterns: tuple[str, ...] = ()
    tracking_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetrievalSettings:
    """Which embedder and index to use, and how many passages to show."""

    embedder: str = ""  # empty -> the bundled all-MiniLM-L6-v2
    index_dir: str = ""  # empty -> paths.index_dir()
    kb_dir: str = ""  # empty -> the bundled demo kb/
    top_k: int = 5
    index_type: str = "auto"  # auto | flat | hnsw | ivf
    runtime: str = "auto"  # embedder runtime: auto (ONNX Runtime when installed) | onnx | torch; same vectors
    precision: str = "int8"  # ONNX Runtime weights: int8 (~1.5x faster, cosine ~0.99 to float) | float32
    max_kb_file_bytes: int = 4 * 1024 * 1024  # bigger KB files are reported, not chunked


@dataclass(frozen=True)
class GenerationSettings:
    """Reply generation: backend choice and model knobs."""

    backend: str = "local"  # local | server | extractive
    model: str = ""  # empty -> bundled SmolLM2-135M-Instruct; else HF id or local dir
    adapter: str = "auto"  # auto -> newest promoted LoRA adapter; "none" disables
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 0  # 0 -> choose automatically
    max_new_tokens: int = 120
    temperature: float = 0.7
    num_suggestions: int = 3
    strategy: str = "select,rewrite"  # per generated slot: select | rewrite | free; measured best (core.reply.strategy)
    history_turns: int = 6
    prompt_token_budget: int = 1024
    server_url: str = ""  # OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1
    server_model: str = ""
    server_api_key: str = ""
    server_timeout_s: float = 30.0


@dataclass(frozen=True)
class UISettings:
    """Terminal app preferences."""

    theme: str = "csassist-dark"
    keys: dict[str, str] = field(default_factory=dict)  # binding id -> keys, for App.set_keymap
    reject_reasons: tuple[str, ...] = ("wrong facts", "wrong tone", "not relevant", "too long")


@dataclass(frozen=True)
class ListenSettings:
    """The optional local HTTP intake (``csassist --listen``) and outbox forwarding."""

    token: str = ""  # empty -> generated at start and shown
    max_body_bytes: int = 64 * 1024
    outbox_url: str = ""  # when set, sent replies are also POSTed here


@dataclass(frozen=True)
class StoreSettings:
    """Where the feedback log and the outbox record go (``[store]``); empty ``url`` = local SQLite.

    ``url = "postgresql://user@host/db"`` is the team mode (the password is better given in
    ``CSASSIST_STORE_URL`` or libpq's ``~/.pgpass`` than written here).  ``agent_id`` names this
    agent on every event (empty = the OS user).  ``max_pending`` bounds the local queue that holds
    events while the database is unreachable.
    """

    url: str = ""
    agent_id: str = ""
    max_pending: int = 100_000


@dataclass(frozen=True)
class ChatwootSettings:
    """``csassist --source chatwoot``: the agent's Chatwoot (see ``core/io/chatwoot.py``).

    The API token comes from ``CSASSIST_CHATWOOT_TOKEN`` or ``token_file`` (a 0600 file), never from
    this file.  ``webhook_secret`` is the path secret of ``/v1/chatwoot/<secret>`` on ``--listen``;
    ``webhook_hmac_secret`` (when set) makes the ``X-Chatwoot-Signature`` header mandatory.
    ``private_notes = true`` posts drafts as private notes for review instead of replies.
    """

    url: str = ""
    account_id: int = 0
    token_file: str = ""
    poll_interval_s: float = 5.0
    private_notes: bool = False
    webhook_secret: str = ""
    webhook_hmac_secret: str = ""


@dataclass(frozen=True)
class Settings:
    """All of config.toml; ``Settings()`` is the full set of defaults."""

    company: CompanySettings = field(default_factory=CompanySettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    ui: UISettings = field(default_factory=UISettings)
    listen: ListenSettings = field(default_factory=ListenSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    chatwoot: ChatwootSettings = field(default_factory=ChatwootSettings)
    #: Problems found while reading the file (unknown keys, wrong types); shown, never fatal.
    warnings: tuple[str, ...] = ()

    def kb_path(self) -> Path:
        """The knowledge-base directory in use."""
        return Path(self.retrieval.kb_dir).expanduser() if self.retrieval.kb_dir else paths.bundled_kb_dir()

    def index_path(self) -> Path:
        """The index directory in use."""
        return Path(self.retrieval.index_dir).expanduser() if self.retrieval.index_dir else paths.index_dir()


_SECTIONS: dict[str, type[Any]] = {
    "company": CompanySettings,
    "retrieval": RetrievalSettings,
    "generation": GenerationSettings,
    "ui": UISettings,
    "listen": ListenSettings,
    "store": StoreSettings,
    "chatwoot": ChatwootSettings,
}


#: Allowed ranges of numeric settings, inclusive (``None``: unbounded on that side).  A value outside
#: its range (``top_k = -3`` silently gave no KB answers) is reported and the default kept.
_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("retrieval", "top_k"): (1, 100),
    ("retrieval", "max_kb_file_bytes"): (1024, 1024 * 1024 * 1024),
    ("generation", "threads"): (0, 1024),
    ("generation", "max_new_tokens"): (1, 8192),
    ("generation", "temperature"): (0.0, 5.0),
    ("generation", "num_suggestions"): (1, 10),
    ("generation", "history_turns"): (0, 200),
    ("generation", "prompt_token_budget"): (64, 1_000_000),
    ("generation", "server_timeout_s"): (0.1, 3600.0),
    ("listen", "max_body_bytes"): (64, 16 * 1024 * 1024),
    ("store", "max_pending"): (1, 100_000_000),
    ("chatwoot", "poll_interval_s"): (0.05, 3600.0),
    ("chatwoot", "account_id"): (0, 10**12),
}


def _range_problem(section: str, key: str, value: float) -> str | None:
    """Why a numeric setting is out of its range (or not finite), or ``None`` when it is fine."""
    if value != value or value in (float("inf"), float("-inf")):  # NaN / infinities from TOML
        return "must be a finite number"
    low, high = _RANGES.get((section, key), (None, None))
    if low is not None and value < low:
        return f"must be at least {low}"
    if high is not None and value > high:
        return f"must be at most {high}"
    return None


def _pattern_problems(section: str, key: str, patterns: tuple[str, ...], warnings: list[str]) -> tuple[str, ...]:
    """Keep the usable company id patterns; report the rest (they would freeze or break analysis)."""
    from csassist.core.understand.user_patterns import pattern_problem

    kept = []
    for pattern in patterns:
        problem = pattern_problem(pattern)
        if problem is None:
            kept.append(pattern)
        else:
            warnings.append(f"config.toml: [{section}].{key}: {problem} (ignored)")
    return tuple(kept)


def _coerce(section: str, cls: type[Any], raw: dict[str, Any], warnings: list[str]) -> Any:
    """Build one section dataclass from a raw TOML table, keeping defaults for bad values."""
    defaults = cls()
    values: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in raw.items():
        if key not in known:
            warnings.append(f"config.toml: unknown key [{section}].{key} (ignored)")
            continue
        default = getattr(defaults, key)
        if isinstance(default, tuple):
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                values[key] = tuple(value)
                if key.endswith("_patterns"):
                    values[key] = _pattern_problems(section, key, values[key], warnings)
                continue
        elif isinstance(default, bool):
            if isinstance(value, bool):
                values[key] = value
                continue
        elif isinstance(default, (int, float)):
            number_ok = isinstance(value, (int, float)) if isinstance(default, float) else isinstance(value, int)
            if number_ok and not isinstance(value, bool):
                problem = _range_problem(section, key, value)
                if problem is None:
                    values[key] = float(value) if isinstance(default, float) else value
                else:
                    warnings.append(f"config.toml: [{section}].{key} = {value!r} {problem} (default {default!r} kept)")
                continue
        elif isinstance(default, dict):
            if isinstance(value, dict):
                values[key] = {str(k): str(v) for k, v in value.items()}
                continue
        elif isinstance(value, type(default)):
            values[key] = value
            continue
        warnings.append(
            f"config.toml: [{section}].{key} should be {type(default).__name__}, got {value!r} (default kept)"
        )
    return dataclasses.replace(defaults, **values)


def load_settings(path: Path | None = None) -> Settings:
    """Read ``config.toml`` (default location unless ``path``); a missing file means all defaults.

    A file that is not valid TOML is reported in ``warnings`` and the defaults are used, so a typo in
    the config never keeps the agent from working.
    """
    path = path or paths.config_file()
    warnings: list[str] = []
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            warnings.append(f"{path}: cannot read config ({exc}); using defaults")
    sections: dict[str, Any] = {}
    for name, table in raw.items():
        cls = _SECTIONS.get(name)
        if cls is None or not isinstance(table, dict):
            warnings.append(f"config.toml: unknown section [{name}] (ignored)")
            continue
        sections[name] = _coerce(name, cls, table, warnings)
    settings = Settings(**sections, warnings=tuple(warnings))
    return _apply_env(settings)


def _apply_env(settings: Settings) -> Settings:
    """Let environment variables override secrets and endpoints without touching the file."""
    gen = settings.generation
    url = os.environ.get("CSASSIST_SERVER_URL", gen.server_url)
    key = os.environ.get("CSASSIST_SERVER_KEY", gen.server_api_key)
    backend = os.environ.get("CSASSIST_BACKEND", gen.backend)
    model = os.environ.get("CSASSIST_MODEL", gen.model)
    server_model = os.environ.get("CSASSIST_SERVER_MODEL", gen.server_model)  # the name the server knows
    gen = dataclasses.replace(gen, server_url=url, server_api_key=key, backend=backend, model=model,
                              server_model=server_model)
    store = dataclasses.replace(settings.store, url=os.environ.get("CSASSIST_STORE_URL", settings.store.url))
    return dataclasses.replace(settings, generation=gen, store=store)

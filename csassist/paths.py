"""Where csassist keeps user data.

Everything the app writes (indexes, models, feedback log, outbox, config) lives under the
platformdirs locations of the current user.  Setting ``CSASSIST_HOME`` moves *all* of them under
one directory: tests use it so they never touch the real home, and users use it to keep several
independent setups side by side.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "csassist"
HOME_ENV = "CSASSIST_HOME"
#: The repository checkout this module was imported from (holds kb/ and themes/ in a source tree).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Where an installed wheel keeps the demo KB and the themes (setup.py copies them there at build time).
PACKAGED_DATA = Path(__file__).resolve().parent / "_bundled"


def _override() -> Path | None:
    """The ``CSASSIST_HOME`` directory when set, else ``None``."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Root for indexes, models, logs and the outbox."""
    home = _override()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """Holds ``config.toml`` and user themes."""
    home = _override()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    """Disposable files (downloads, converted weights may be rebuilt from sources)."""
    home = _override()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME))


def config_file() -> Path:
    """The user's ``config.toml`` (optional; defaults apply when absent)."""
    return config_dir() / "config.toml"


def user_themes_dir() -> Path:
    """Extra theme files dropped in by the user."""
    return config_dir() / "themes"


def index_dir() -> Path:
    """Default location of the FAISS index, its metadata and the intent head fitted beside it."""
    return data_dir() / "index"


def models_dir() -> Path:
    """Converted generator weights, fine-tuned intent models and LoRA adapters."""
    return data_dir() / "models"


def intent_models_dir() -> Path:
    """Versioned fully fine-tuned intent models (``csassist finetune --intents``)."""
    return models_dir() / "intent"


def adapters_dir() -> Path:
    """Versioned LoRA adapters for the generator (``csassist finetune --from-log``)."""
    return models_dir() / "adapters"


def feedback_db() -> Path:
    """The crash-safe feedback log (SQLite, WAL)."""
    return data_dir() / "feedback.sqlite3"


def outbox_file() -> Path:
    """Replies the agent sent, one JSON object per line, flushed on every send."""
    return data_dir() / "outbox.jsonl"


def _shipped(name: str) -> Path:
    """``kb``/``themes`` inside an installed package, else at the top of the checkout (source, editable)."""
    packaged = PACKAGED_DATA / name
    return packaged if packaged.is_dir() else PROJECT_ROOT / name


def bundled_kb_dir() -> Path:
    """The demo knowledge base shipped with the project (``kb/`` at the top of the checkout, in the wheel
    ``csassist/_bundled/kb``)."""
    return _shipped("kb")


def bundled_themes_dir() -> Path:
    """The theme files shipped with the project (``themes/`` at the top of the checkout, in the wheel
    ``csassist/_bundled/themes``)."""
    return _shipped("themes")


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as private 0700 folders if needed and return it.

    (The same rule as ``csassist.core.private_files.make_private_dir``, kept here without importing
    the engine: ``paths`` sits below ``core``.)
    """
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    return path

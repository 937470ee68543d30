"""Theme files (TOML or YAML data) -> :class:`textual.theme.Theme`.

Themes are data, not code, so users can drop their own file in ``paths.user_themes_dir()`` without
touching Python.  A file that cannot be read becomes a :class:`ThemeProblem` (shown as a notification
by the app) instead of an exception, so one bad file never keeps the agent from working.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "csassist-dark"
FALLBACK_THEME = "textual-dark"  # built into Textual, always available
THEME_SUFFIXES = (".toml", ".yaml", ".yml")

#: App-specific theme variables and their defaults; the .tcss uses them as ``$csassist-...``.
APP_VARIABLES: dict[str, str] = {
    "csassist-urgent": "#ff5f5f",
    "csassist-elevated": "#ffaf5f",
    "csassist-normal": "#87d7af",
    "csassist-customer": "#e4e4e4",
    "csassist-agent": "#5fafff",
    "csassist-bar": "#5fafff",
}

_COLOR_KEYS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background",
               "surface", "panel", "boost")
_FLOAT_KEYS = ("luminosity_spread", "text_alpha")
#: A theme name is shown in the palette (which parses markup) and used as an id: plain words only.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}")
#: A variable name as Textual's CSS variables are spelled.
_VARIABLE_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
#: Non-colour variable values Textual itself uses ("bold", "none", "b u", "$primary 50%"...): no brackets,
#: "=", "@", ":" or "/", so a value can neither be markup, nor a link, nor a CSS injection.
_VARIABLE_VALUE = re.compile(r"[A-Za-z0-9 #.%(),$-]{1,64}")


@dataclass(frozen=True)
class ThemeProblem:
    """A theme file that could not be used, and why (shown to the user, never raised)."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ThemeFileError(ValueError):
    """Raised by :func:`load_theme_file` for a file that is not a usable theme."""


def _check_color(key: str, value: Any) -> str:
    """Return ``value`` if it parses as a colour, else raise naming the key."""
    if not isinstance(value, str):
        raise ThemeFileError(f"{key} must be a colour string, got {value!r}")
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ThemeFileError(f"{key}: {value!r} is not a colour ({exc})") from None
    return value


def theme_from_data(path: Path, data: Any) -> Theme:
    """Validate a parsed theme mapping and build the Theme (raises ThemeFileError on bad data)."""
    if not isinstance(data, dict):
        raise ThemeFileError("expected a table/mapping of theme keys at the top level")
    name = data.get("name") or path.stem
    if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
        raise ThemeFileError(f"name must be 1-64 letters, digits, spaces or _.+- (got {name!r})")
    if "primary" not in data:
        raise ThemeFileError("primary colour is required")
    known = {"name", "dark", "variables", *_COLOR_KEYS, *_FLOAT_KEYS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ThemeFileError(f"unknown key(s): {', '.join(unknown)}")
    kwargs: dict[str, Any] = {"name": name.strip()}
    for key in _COLOR_KEYS:
        if key in data:
            kwargs[key] = _check_color(key, data[key])
    for key in _FLOAT_KEYS:
        if key in data:
            value = data[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ThemeFileError(f"{key} must be a number, got {value!r}")
            kwargs[key] = float(value)
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError(f"dark must be true or false, got {dark!r}")
    kwargs["dark"] = dark
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeFileError("variables must be a table of name = value")
    kwargs["variables"] = {str(k): _check_variable(str(k), v) for k, v in variables.items()}
    return Theme(**kwargs)


def _check_variable(key: str, value: Any) -> str:
    """A theme variable: csassist's own must be colours (widgets style text with them), others plain tokens."""
    if not _VARIABLE_NAME.fullmatch(key):
        raise ThemeFileError(f"variable name {key!r} must be lower-case letters, digits and '-'")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ThemeFileError(f"variables.{key} must be a string, got {value!r}")
    text = str(value).strip()
    if key.startswith("csassist-"):
        return _check_color(f"variables.{key}", text)
    if not _VARIABLE_VALUE.fullmatch(text):
        raise ThemeFileError(f"variables.{key}: {text!r} is not a colour or style value")
    return text


def load_theme_file(path: Path) -> Theme:
    """Read one ``.toml`` / ``.yaml`` theme file; any problem raises ThemeFileError with the reason."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"cannot read ({exc})") from None
    try:
        data = tomllib.loads(raw) if path.suffix == ".toml" else yaml.safe_load(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"invalid TOML ({exc})") from None
    except yaml.YAMLError as exc:
        raise ThemeFileError(f"invalid YAML ({exc})") from None
    return theme_from_data(path, data)


def load_themes(directories: Iterable[Path]) -> tuple[list[Theme], list[ThemeProblem]]:
    """Load every theme file from ``directories`` in order (later ones override earlier names)."""
    themes: list[Theme] = []
    problems: list[ThemeProblem] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in THEME_SUFFIXES or not path.is_file():
                continue
            try:
                themes.append(load_theme_file(path))
            except ThemeFileError as exc:
                problems.append(ThemeProblem(path, str(exc)))
    return themes, problems

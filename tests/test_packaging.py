"""The demo KB and the themes are found in a checkout and in an installed wheel alike.

The wheel side is exercised for real by ``scripts/check-wheel`` (CI builds, installs and runs it);
these tests pin the lookup rule it relies on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csassist import paths

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_a_checkout_uses_the_top_level_directories() -> None:
    assert not paths.PACKAGED_DATA.exists()  # nothing is copied into the source tree
    assert paths.bundled_kb_dir() == REPO_ROOT / "kb"
    assert paths.bundled_themes_dir() == REPO_ROOT / "themes"


def test_an_installed_package_uses_its_bundled_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("kb", "themes"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(paths, "PACKAGED_DATA", tmp_path)
    assert paths.bundled_kb_dir() == tmp_path / "kb"
    assert paths.bundled_themes_dir() == tmp_path / "themes"


def test_the_build_hook_ships_what_the_lookup_expects() -> None:
    setup_py = (REPO_ROOT / "setup.py").read_text(encoding="utf-8")
    assert 'SHIPPED = ("kb", "themes")' in setup_py and 'Path("csassist") / "_bundled"' in setup_py
    assert paths.PACKAGED_DATA.relative_to(REPO_ROOT) == Path("csassist") / "_bundled"
    manifest = (REPO_ROOT / "MANIFEST.in").read_text(encoding="utf-8")
    assert "graft kb" in manifest and "graft themes" in manifest  # an sdist can build the same wheel

"""Build hook: the wheel carries the demo knowledge base and the themes.

``kb/`` and ``themes/`` stay at the top of the repository (they are the project's face and users copy
them), so they are not inside the ``csassist`` package in git.  This hook copies them into the built
package as ``csassist/_bundled/kb`` and ``csassist/_bundled/themes``; :mod:`csassist.paths` finds them
there in an installed wheel and at the top of the checkout otherwise.  Everything else is declared in
pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Top-level directories shipped inside the package, and where they go in it.
SHIPPED = ("kb", "themes")
TARGET = Path("csassist") / "_bundled"


class BuildPyWithData(build_py):
    """``build_py`` plus a copy of kb/ and themes/ (skipped for editable installs, which use the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in SHIPPED:
            source = ROOT / name
            if not source.is_dir():  # building from an sdist made without them: fail loudly, not silently
                raise SystemExit(f"setup.py: {source} is missing; the wheel would have no {name}/")
            target = Path(self.build_lib) / TARGET / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithData})

"""The engine must stay headless: importing csassist.core never pulls in textual or rich."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import csassist.core


def test_core_modules_do_not_import_ui_libraries() -> None:
    """Import every core module in a clean interpreter and check sys.modules afterwards."""
    names = [m.name for m in pkgutil.walk_packages(csassist.core.__path__, "csassist.core.")]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') or m.startswith('csassist.ui'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imported UI modules: {result.stdout.strip()}"


def test_cli_help_is_fast_and_lists_commands() -> None:
    """`csassist --help` must not import torch (it stays instant) and lists every subcommand."""
    code = "import sys\nfrom csassist.cli import build_parser\nbuild_parser().format_help()\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"

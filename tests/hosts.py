"""Real host trainer processes for tests, on each test's own subject root."""

from __future__ import annotations

from pathlib import Path

from bus_contracts.subjects import Subjects
from host_trainer.child import HostTrainerProcess

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Short intervals so that fault tests see "lost" in seconds, not minutes.
TEST_SETTINGS = {
    "data_dir": str(PROJECT_ROOT / "data"),
    "metrics_port": "-1",
    "heartbeat_interval_s": "0.5",
    "lost_after_s": "3",
}


def start_host(
    *, url: str, password: str, subjects: Subjects, work_dir: Path, host_id: str, **settings: str
) -> HostTrainerProcess:
    return HostTrainerProcess(
        url=url,
        password=password,
        work_dir=work_dir,
        host_id=host_id,
        subjects=subjects,
        settings={**TEST_SETTINGS, **settings},
    )

"""HostConfig: TOML file, environment overrides, validation that names key and source."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from host_trainer.config import RELOADABLE, ConfigError, HostConfig, load_config, redact_url

pytestmark = pytest.mark.timeout(10)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host-trainer.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, environ={})
    assert config.subject_root == "training"
    assert config.max_concurrent_jobs == 1
    assert config.max_queued_jobs == 16
    assert config.metrics_host == "127.0.0.1"
    assert config.metrics_port == 9464
    assert config.shutdown_timeout_s < 10
    assert config.nats_url is None
    assert config.host_id
    assert config.data_dir.is_absolute()
    assert config.models_dir.is_absolute()
    assert config.data_dir.name == "data"
    assert config.models_dir.parts[-2:] == ("state", "models")


def test_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "bars").mkdir()
    path = write(
        tmp_path,
        'host_id = "gpu-box-1"\nmax_concurrent_jobs = 3\nprogress_interval_s = 1\n'
        'data_dir = "bars"\nlog_level = "debug"\nnats_url = "nats://file:4222"\n',
    )
    config = load_config(
        path,
        environ={
            "HOST_TRAINER_MAX_CONCURRENT_JOBS": "2",
            "HOST_TRAINER_GPU_MEMORY_FRACTION": "0.5",
            "NATS_URL": "nats://env:4222",
            "HOST_TRAINER_CONFIG": str(path),
            "UNRELATED": "x",
        },
    )
    assert config.host_id == "gpu-box-1"
    assert config.max_concurrent_jobs == 2
    assert config.gpu_memory_fraction == 0.5
    assert config.progress_interval_s == 1.0
    assert config.log_level == "DEBUG"
    assert config.nats_url == "nats://env:4222"
    # relative paths in the file are relative to the file
    assert config.data_dir == (tmp_path / "bars").resolve()


def test_host_trainer_nats_url_beats_nats_url() -> None:
    config = load_config(
        None, environ={"NATS_URL": "nats://a:1", "HOST_TRAINER_NATS_URL": "nats://b:2"}
    )
    assert config.nats_url == "nats://b:2"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("max_concurrent_jobs = 0", "host-trainer.toml: max_concurrent_jobs: must be >= 1"),
        ("max_queued_jobs = -1", "max_queued_jobs: must be >= 0"),
        ("progress_interval_s = 0.001", "progress_interval_s: must be between"),
        ("heartbeat_interval_s = 0", "heartbeat_interval_s: must be between"),
        ("lost_after_s = 1.5", "lost_after_s: must be >= 2 × heartbeat_interval_s"),
        ("stop_grace_s = -1", "stop_grace_s: must be >= 0"),
        ("stop_grace_s = 9", "stop_grace_s: must be < shutdown_timeout_s"),
        ("shutdown_timeout_s = 10", "shutdown_timeout_s: must be > 0 and < 10"),
        ("metrics_port = 70000", "metrics_port: must be a port"),
        ("metrics_host = ''", "metrics_host: must not be empty"),
        ("default_device = 'tpu'", "default_device: must be auto, cpu, mps, cuda or cuda:N"),
        ("gpu_memory_fraction = 1.5", "gpu_memory_fraction: must be > 0 and <= 1"),
        ("log_level = 'loud'", "log_level: must be one of DEBUG"),
        ("host_id = 'a b'", "host_id: must match"),
        ("subject_root = 'a..b'", "subject_root: must be dot-separated"),
        ("nats_url = 'http://x'", "nats_url: must be a URL like nats://"),
        ("data_dir = ''", "data_dir: must not be empty"),
        ("data_dir = 3", "data_dir: must be a path string (got int)"),
        ("max_concurrent_jobs = '2'", "max_concurrent_jobs: must be an integer (got '2')"),
        ("max_concurrent_jobs = true", "max_concurrent_jobs: must be an integer (got bool)"),
        ("max_concurent_jobs = 2", "max_concurent_jobs: unknown setting; did you mean"),
    ],
)
def test_each_file_error_names_file_and_key(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(ConfigError, match="^" + re.escape(str(path))) as caught:
        load_config(path, environ={})
    assert expected.removeprefix("host-trainer.toml: ") in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HOST_TRAINER_MAX_CONCURRENT_JOBS", "two", "max_concurrent_jobs: must be an integer"),
        ("HOST_TRAINER_MAX_CONCURRENT_JOBS", "0", "max_concurrent_jobs: must be >= 1"),
        ("HOST_TRAINER_SHUTDOWN_TIMEOUT_S", "12", "shutdown_timeout_s: must be > 0 and < 10"),
        ("HOST_TRAINER_MAX_CONCURENT_JOBS", "2", "unknown setting; did you mean "
         "'HOST_TRAINER_MAX_CONCURRENT_JOBS'"),
        ("NATS_URL", "localhost:4222", "nats_url: must be a URL"),
    ],
)  # fmt: skip
def test_each_environment_error_names_variable_and_key(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: ") as caught:
        load_config(None, environ={name: value})
    assert expected in str(caught.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "max_concurrent_jobs = 0\nbogus = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"HOST_TRAINER_METRICS_PORT": "-2"})
    keys = {key for _, key, _ in caught.value.problems}
    assert keys == {"max_concurrent_jobs", "bogus", "metrics_port"}
    assert len(str(caught.value).splitlines()) == 3


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(write(tmp_path, "max_concurrent_jobs = = 2"), environ={})


def test_config_is_frozen() -> None:
    config = load_config(None, environ={})
    with pytest.raises(AttributeError):
        config.max_concurrent_jobs = 5  # type: ignore[misc]


def test_reload_applies_reloadable_and_refuses_others() -> None:
    old = load_config(None, environ={})
    new = msgspec.structs.replace(
        old,
        max_concurrent_jobs=4,
        max_queued_jobs=2,
        progress_interval_s=2.0,
        log_level="DEBUG",
        metrics_port=9999,
        subject_root="other",
    )
    applied, refused = old.reload(new)
    assert applied == {
        "max_concurrent_jobs": 4,
        "max_queued_jobs": 2,
        "progress_interval_s": 2.0,
        "log_level": "DEBUG",
    }
    assert refused == {"metrics_port": 9999, "subject_root": "other"}
    assert set(applied) == RELOADABLE
    reloaded = msgspec.structs.replace(old, **applied)
    assert reloaded.max_concurrent_jobs == 4
    assert reloaded.metrics_port == old.metrics_port
    assert old.reload(old) == ({}, {})


def test_public_dict_masks_password() -> None:
    config = load_config(None, environ={"NATS_URL": "nats://host_trainer:s3cret@10.0.0.1:4222"})
    shown = config.public_dict()
    assert "s3cret" not in str(shown)
    assert shown["nats_url"] == "nats://host_trainer:***@10.0.0.1:4222"
    assert isinstance(shown["data_dir"], str)
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"


def test_subjects_follow_root() -> None:
    config = HostConfig(subject_root="t1.training")
    assert config.subjects.start == "t1.training.start"


def test_a_missing_data_dir_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HOST_TRAINER_DATA_DIR: data_dir: no such directory"):
        load_config(None, environ={"HOST_TRAINER_DATA_DIR": str(tmp_path / "nowhere")})

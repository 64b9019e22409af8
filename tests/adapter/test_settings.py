"""Router settings: defaults, environment variables, errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_adapter import RouterSettings, SettingsError
from embedded_nats.paths import PROJECT_ROOT


def test_defaults() -> None:
    settings = RouterSettings.from_env({})
    assert settings.use_host is True
    assert settings.nats_url is None
    assert settings.subject_root == "training"
    assert settings.start_timeout_s == 2.0
    assert settings.request_timeout_s == 5.0
    assert settings.connect_timeout_s <= 1.0
    assert settings.breaker_failure_threshold == 3
    assert settings.breaker_recovery_s == 30
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.models_dir.name == "models"
    assert settings.models_dir.parent.name == "state"
    assert settings.local_max_concurrent_jobs == 1
    assert settings.heartbeat_interval_s == 1.0
    assert settings.lost_after_s == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)],
)
def test_use_host_accepts_common_spellings(text: str, expected: bool) -> None:
    assert RouterSettings.from_env({"USE_TRAINING_HOST_SERVICE": text}).use_host is expected


def test_use_host_refuses_anything_else_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="USE_TRAINING_HOST_SERVICE") as info:
        RouterSettings.from_env({"USE_TRAINING_HOST_SERVICE": "maybe"})
    assert info.value.name == "USE_TRAINING_HOST_SERVICE"


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_USER", raising=False)
    settings = RouterSettings.from_env(
        {
            "NATS_URL": "nats://10.0.0.2:4222",
            "TRAINING_SUBJECT_ROOT": "lab.training",
            "TRAINING_DATA_DIR": str(tmp_path / "data"),
            "TRAINING_MODELS_DIR": str(tmp_path / "models"),
            "TRAINING_START_TIMEOUT_S": "0.5",
            "TRAINING_BREAKER_FAILURE_THRESHOLD": "5",
            "TRAINING_LOCAL_MAX_CONCURRENT_JOBS": "2",
        }
    )
    assert settings.nats_url == "nats://10.0.0.2:4222"
    assert settings.endpoint().url == "nats://10.0.0.2:4222"
    assert settings.endpoint().user == "backend"
    assert settings.subjects.start == "lab.training.start"
    assert settings.data_dir == tmp_path / "data"
    assert settings.models_dir == tmp_path / "models"
    assert settings.start_timeout_s == 0.5
    assert settings.breaker_failure_threshold == 5
    assert settings.local_max_concurrent_jobs == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRAINING_START_TIMEOUT_S", "soon"),
        ("TRAINING_START_TIMEOUT_S", "-1"),
        ("TRAINING_BREAKER_FAILURE_THRESHOLD", "0"),
        ("TRAINING_BREAKER_FAILURE_THRESHOLD", "2.5"),
        ("TRAINING_SUBJECT_ROOT", "bad root"),
        ("TRAINING_CONNECT_TIMEOUT_S", "nan"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as info:
        RouterSettings.from_env({variable: value})
    assert info.value.name == variable


def test_constructor_checks_fields() -> None:
    with pytest.raises(SettingsError, match="lost_after_s"):
        RouterSettings(heartbeat_interval_s=5, lost_after_s=2)

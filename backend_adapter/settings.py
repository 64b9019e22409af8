"""The router's settings: defaults, environment variables, validation.

Every field has a default, so ``RouterSettings()`` is a working configuration
and ``RouterSettings.from_env()`` only overrides what the environment sets.
A bad value raises :class:`SettingsError` naming the variable (or field).

| field | variable | default |
|---|---|---|
| use_host | ``USE_TRAINING_HOST_SERVICE`` | true |
| nats_url | ``NATS_URL`` | the embedded server's URL, else loopback:4222 |
| subject_root | ``TRAINING_SUBJECT_ROOT`` | ``training`` |
| start_timeout_s | ``TRAINING_START_TIMEOUT_S`` | 2.0 |
| request_timeout_s | ``TRAINING_REQUEST_TIMEOUT_S`` | 5.0 |
| connect_timeout_s | ``TRAINING_CONNECT_TIMEOUT_S`` | 1.0 |
| breaker_failure_threshold | ``TRAINING_BREAKER_FAILURE_THRESHOLD`` | 3 |
| breaker_recovery_s | ``TRAINING_BREAKER_RECOVERY_S`` | 30.0 |
| data_dir | ``TRAINING_DATA_DIR`` | the project's ``data/`` |
| models_dir | ``TRAINING_MODELS_DIR`` | ``<state dir>/models`` |
| local_max_concurrent_jobs | ``TRAINING_LOCAL_MAX_CONCURRENT_JOBS`` | 1 |
| heartbeat_interval_s | ``TRAINING_HEARTBEAT_INTERVAL_S`` | 1.0 |
| lost_after_s | ``TRAINING_LOST_AFTER_S`` | 10.0 |
| reconnect_interval_s | ``TRAINING_RECONNECT_INTERVAL_S`` | 5.0 (0: never retry) |

The NATS user and password are not settings: they come from ``NATS_USER`` /
``NATS_PASSWORD`` or the embedded server's credentials file (role ``backend``),
see :meth:`RouterSettings.endpoint`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from bus_contracts.subjects import Subjects
from embedded_nats import BusEndpoint, state_dir
from embedded_nats.paths import PROJECT_ROOT

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class SettingsError(ValueError):
    """A setting with a value the router cannot use; ``name`` is the variable or field."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


def _default_models_dir() -> Path:
    return state_dir() / "models"


class RouterSettings(msgspec.Struct, frozen=True, kw_only=True):
    use_host: bool = True
    """Send jobs to a host trainer at all (false: always train in this process' container)."""
    nats_url: str | None = None
    """None: ``NATS_URL``, else the embedded server's state file, else loopback."""
    subject_root: str = "training"
    start_timeout_s: float = 2.0
    """How long ``training.start`` may take before the host counts as hung."""
    request_timeout_s: float = 5.0
    """status, stop, performance, jobs and health requests."""
    connect_timeout_s: float = 1.0
    breaker_failure_threshold: int = 3
    breaker_recovery_s: float = 30.0
    data_dir: Path = PROJECT_ROOT / "data"
    models_dir: Path = msgspec.field(default_factory=_default_models_dir)
    local_max_concurrent_jobs: int = 1
    heartbeat_interval_s: float = 1.0
    lost_after_s: float = 10.0
    reconnect_interval_s: float = 5.0
    """After a failed first connect, retry in the background this often (0: never)."""

    def __post_init__(self) -> None:
        for name in (
            "start_timeout_s",
            "request_timeout_s",
            "connect_timeout_s",
            "breaker_recovery_s",
            "heartbeat_interval_s",
            "lost_after_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SettingsError(name, f"must be a positive number of seconds, got {value!r}")
        if not (math.isfinite(self.reconnect_interval_s) and self.reconnect_interval_s >= 0):
            raise SettingsError("reconnect_interval_s", "must be >= 0 (0: never retry)")
        for name in ("breaker_failure_threshold", "local_max_concurrent_jobs"):
            if getattr(self, name) < 1:
                raise SettingsError(name, f"must be at least 1, got {getattr(self, name)!r}")
        if self.lost_after_s <= self.heartbeat_interval_s:
            raise SettingsError("lost_after_s", "must be longer than heartbeat_interval_s")
        try:
            Subjects(self.subject_root)
        except ValueError as exc:
            raise SettingsError("subject_root", str(exc)) from None

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.subject_root)

    def endpoint(self) -> BusEndpoint:
        """Where and as whom to connect: the ``backend`` user."""
        found = BusEndpoint.from_environment("backend")
        if self.nats_url is None:
            return found
        return BusEndpoint(url=self.nats_url, user=found.user, password=found.password)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> RouterSettings:
        """Defaults, then the environment, then ``overrides`` (field names)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable, (field, parse) in _VARIABLES.items():
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[field] = parse(raw.strip())
            except ValueError as exc:
                raise SettingsError(variable, str(exc)) from None
        values.update(overrides)
        try:
            return cls(**values)
        except SettingsError as exc:
            named = _VARIABLE_OF.get(exc.name)
            if named is not None and exc.name not in overrides and named in env:
                raise SettingsError(named, exc.problem) from None
            raise


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true/false, 1/0 or yes/no, got {text!r}")


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _parse_path(text: str) -> Path:
    return Path(text).expanduser()


_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "USE_TRAINING_HOST_SERVICE": ("use_host", _parse_bool),
    "NATS_URL": ("nats_url", str),
    "TRAINING_SUBJECT_ROOT": ("subject_root", str),
    "TRAINING_START_TIMEOUT_S": ("start_timeout_s", _parse_float),
    "TRAINING_REQUEST_TIMEOUT_S": ("request_timeout_s", _parse_float),
    "TRAINING_CONNECT_TIMEOUT_S": ("connect_timeout_s", _parse_float),
    "TRAINING_BREAKER_FAILURE_THRESHOLD": ("breaker_failure_threshold", _parse_int),
    "TRAINING_BREAKER_RECOVERY_S": ("breaker_recovery_s", _parse_float),
    "TRAINING_DATA_DIR": ("data_dir", _parse_path),
    "TRAINING_MODELS_DIR": ("models_dir", _parse_path),
    "TRAINING_LOCAL_MAX_CONCURRENT_JOBS": ("local_max_concurrent_jobs", _parse_int),
    "TRAINING_HEARTBEAT_INTERVAL_S": ("heartbeat_interval_s", _parse_float),
    "TRAINING_LOST_AFTER_S": ("lost_after_s", _parse_float),
    "TRAINING_RECONNECT_INTERVAL_S": ("reconnect_interval_s", _parse_float),
}
_VARIABLE_OF = {field: variable for variable, (field, _) in _VARIABLES.items()}

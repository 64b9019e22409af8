"""The host trainer's settings: a TOML file, then environment overrides.

Every key may be set in the file (``max_concurrent_jobs = 2``) and overridden by
``HOST_TRAINER_<KEY>`` in the environment (``HOST_TRAINER_MAX_CONCURRENT_JOBS=2``);
``NATS_URL`` also sets ``nats_url``, below ``HOST_TRAINER_NATS_URL``. Everything
is checked at load time and every problem names the key and where its value came
from: ``host-trainer.toml: max_concurrent_jobs: must be >= 1``.

Relative paths in the file are taken from the file's folder, relative paths in
the environment from the working directory.

``SIGHUP`` reloads the file; only :data:`RELOADABLE` keys change in a running
host, the others wait for a restart (:meth:`HostConfig.reload` says which).
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

from bus_contracts import bounds
from bus_contracts.subjects import Subjects
from embedded_nats.paths import PROJECT_ROOT, state_dir

ENV_PREFIX = "HOST_TRAINER_"
CONFIG_ENV = "HOST_TRAINER_CONFIG"
"""Names the config file when ``--config`` is not given (not a setting itself)."""

MAX_SHUTDOWN_TIMEOUT_S = 10.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

RELOADABLE: frozenset[str] = frozenset(
    {"max_concurrent_jobs", "max_queued_jobs", "progress_interval_s", "log_level"}
)
"""Keys a running host applies on ``SIGHUP``; the others need a restart."""

_HOST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DEVICE = re.compile(bounds.DEVICE_PATTERN)
_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _default_host_id() -> str:
    name = socket.gethostname().split(".")[0] or "host"
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:64]


def _default_data_dir() -> Path:
    return PROJECT_ROOT / "data"


def _default_models_dir() -> Path:
    return state_dir() / "models"


class ConfigError(ValueError):
    """One or more settings are wrong; each line names the source and the key."""

    def __init__(self, problems: list[tuple[str, str | None, str]]) -> None:
        self.problems = problems
        super().__init__(
            "\n".join(
                f"{source}: {key}: {problem}" if key else f"{source}: {problem}"
                for source, key, problem in problems
            )
        )


class HostConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Effective settings of one host trainer. Build it with :func:`load_config`."""

    host_id: str = msgspec.field(default_factory=_default_host_id)
    nats_url: str | None = None
    """None: find the bus like every client of the project (``NATS_URL``, the
    embedded server's state file, then loopback)."""
    subject_root: str = "training"
    data_dir: Path = msgspec.field(default_factory=_default_data_dir)
    """Where ``{SYMBOL}_{TIMEFRAME}.csv`` files are read from."""
    models_dir: Path = msgspec.field(default_factory=_default_models_dir)
    """Where trained models are written."""
    max_concurrent_jobs: int = 1
    """Reloadable."""
    max_queued_jobs: int = 16
    """Reloadable."""
    progress_interval_s: float = 0.5
    """Reloadable: the fastest rate of batch progress events a job publishes."""
    heartbeat_interval_s: float = 1.0
    lost_after_s: float = 10.0
    stop_grace_s: float = 1.0
    """How long a cancelled worker may end on its own before it is terminated."""
    max_job_duration_s: float = 6 * 3600.0
    """A job still training after this long is ended as failed; 0 means no limit."""
    shutdown_timeout_s: float = 8.0
    """How long SIGTERM waits for running jobs to end; below 10 s."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    """0 picks a free port; -1 turns the endpoint off."""
    default_device: str = "auto"
    gpu_memory_fraction: float = 0.9
    log_level: LogLevel = "INFO"
    """Reloadable."""

    @property
    def subjects(self) -> Subjects:
        return Subjects(root=self.subject_root)

    def reload(self, new: HostConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        """Compare with a freshly loaded config: ``(applied, refused)``, each mapping
        a changed key to its new value. Apply with
        ``msgspec.structs.replace(config, **applied)``; refused keys need a restart."""
        applied: dict[str, Any] = {}
        refused: dict[str, Any] = {}
        for name in self.__struct_fields__:
            old_value, new_value = getattr(self, name), getattr(new, name)
            if old_value != new_value:
                (applied if name in RELOADABLE else refused)[name] = new_value
        return applied, refused

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain values, with any password in the URL masked."""
        values: dict[str, Any] = msgspec.to_builtins(self, enc_hook=str)
        if self.nats_url:
            values["nats_url"] = redact_url(self.nats_url)
        return values


def redact_url(url: str) -> str:
    """``nats://user:secret@host`` → ``nats://user:***@host``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


_FIELDS: tuple[str, ...] = HostConfig.__struct_fields__
_PATH_KEYS = frozenset({"data_dir", "models_dir"})


def env_var(key: str) -> str:
    """The environment variable that overrides ``key``."""
    return ENV_PREFIX + key.upper()


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> HostConfig:
    """Read ``path`` (optional), apply the environment, validate; raise
    :class:`ConfigError` listing every problem with its key and source."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[tuple[str, str | None, str]] = []
    file_labels: set[str] = set()

    if path is not None:
        file = Path(path)
        label = str(path)
        file_labels.add(label)
        try:
            with file.open("rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError([(label, None, "file not found")]) from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([(label, None, f"cannot read: {exc}")]) from None
        for key, value in raw.items():
            if key not in _FIELDS:
                problems.append((label, key, "unknown setting" + _did_you_mean(key)))
                continue
            if key in _PATH_KEYS and isinstance(value, str) and value:
                value = file.resolve().parent / value  # noqa: PLW2901 - relative to the file
            values[key], sources[key] = value, label

    if environ.get("NATS_URL"):
        values["nats_url"], sources["nats_url"] = environ["NATS_URL"], "NATS_URL"
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = name.removeprefix(ENV_PREFIX).lower()
        if key not in _FIELDS:
            problems.append((name, None, "unknown setting" + _did_you_mean(key, env=True)))
            continue
        values[key], sources[key] = text, name

    typed: dict[str, Any] = {}
    for key, value in values.items():
        try:
            typed[key] = _convert(key, value, from_env=sources[key] not in file_labels)
        except ValueError as exc:
            problems.append((sources[key], key, str(exc)))

    config = HostConfig(**typed)
    problems += [(sources.get(key, "default"), key, problem) for key, problem in _check(config)]
    if problems:
        raise ConfigError(problems)
    return config


def _did_you_mean(key: str, *, env: bool = False) -> str:
    close = difflib.get_close_matches(key, _FIELDS, n=1)
    if not close:
        return ""
    return f"; did you mean {env_var(close[0]) if env else close[0]!r}?"


_TYPES: dict[str, Any] = typing.get_type_hints(HostConfig)
_KINDS: dict[Any, str] = {
    str: "a string",
    str | None: "a string",
    int: "an integer",
    float: "a number",
    LogLevel: "one of " + ", ".join(LOG_LEVELS),
}


def _convert(key: str, value: Any, *, from_env: bool) -> Any:
    """One setting to its declared type; text from the environment may spell a number."""
    if key == "log_level" and isinstance(value, str):
        value = value.upper()
    if key == "nats_url" and value == "":
        return None
    if key in _PATH_KEYS:
        if isinstance(value, Path):
            return value.resolve()
        if not isinstance(value, str):
            raise ValueError(f"must be a path string (got {type(value).__name__})")
        if not value:
            raise ValueError("must not be empty")
        return Path(value).resolve()
    annotation = _TYPES[key]
    try:
        return msgspec.convert(value, annotation, strict=not from_env)
    except msgspec.ValidationError:
        shown = repr(value) if from_env or isinstance(value, str) else type(value).__name__
        raise ValueError(f"must be {_KINDS[annotation]} (got {shown})") from None


def _check(config: HostConfig) -> list[tuple[str, str]]:
    """Value checks: (key, problem) for every setting out of bounds."""
    problems: list[tuple[str, str]] = []

    def need(ok: bool, key: str, problem: str) -> None:
        if not ok:
            problems.append((key, problem))

    need(config.max_job_duration_s >= 0, "max_job_duration_s", "must be >= 0 (0: no limit)")
    # A host without its data would join the queue group and fail every job it took.
    need(config.data_dir.is_dir(), "data_dir", f"no such directory: {config.data_dir}")
    need(
        bool(_HOST_ID.fullmatch(config.host_id)),
        "host_id",
        f"must match {_HOST_ID.pattern} (got {config.host_id!r})",
    )
    if config.nats_url is not None:
        scheme = urlsplit(config.nats_url).scheme
        need(
            scheme in _NATS_SCHEMES and bool(urlsplit(config.nats_url).hostname),
            "nats_url",
            f"must be a URL like nats://host:4222 (scheme one of {', '.join(_NATS_SCHEMES)})",
        )
    try:
        Subjects(root=config.subject_root)
    except ValueError:
        problems.append(("subject_root", "must be dot-separated tokens of [A-Za-z0-9_-]"))
    need(config.max_concurrent_jobs >= 1, "max_concurrent_jobs", "must be >= 1")
    need(config.max_concurrent_jobs <= 64, "max_concurrent_jobs", "must be <= 64")
    need(config.max_queued_jobs >= 0, "max_queued_jobs", "must be >= 0")
    need(config.max_queued_jobs <= 10_000, "max_queued_jobs", "must be <= 10000")
    need(
        0.05 <= config.progress_interval_s <= 60,
        "progress_interval_s",
        "must be between 0.05 and 60",
    )
    need(
        0.05 <= config.heartbeat_interval_s <= 60,
        "heartbeat_interval_s",
        "must be between 0.05 and 60",
    )
    need(
        config.lost_after_s >= 2 * config.heartbeat_interval_s,
        "lost_after_s",
        f"must be >= 2 × heartbeat_interval_s ({2 * config.heartbeat_interval_s:g})",
    )
    need(config.stop_grace_s >= 0, "stop_grace_s", "must be >= 0")
    need(
        0 < config.shutdown_timeout_s < MAX_SHUTDOWN_TIMEOUT_S,
        "shutdown_timeout_s",
        f"must be > 0 and < {MAX_SHUTDOWN_TIMEOUT_S:g}",
    )
    need(
        config.stop_grace_s < config.shutdown_timeout_s,
        "stop_grace_s",
        "must be < shutdown_timeout_s",
    )
    need(bool(config.metrics_host.strip()), "metrics_host", "must not be empty")
    need(
        -1 <= config.metrics_port <= 65535,
        "metrics_port",
        "must be a port (0 = any free port, -1 = off)",
    )
    need(
        bool(_DEVICE.fullmatch(config.default_device)),
        "default_device",
        "must be auto, cpu, mps, cuda or cuda:N",
    )
    need(0 < config.gpu_memory_fraction <= 1, "gpu_memory_fraction", "must be > 0 and <= 1")
    return problems

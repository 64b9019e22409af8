"""The host trainer: the service next to the GPU that takes training jobs over NATS.

``host-trainer serve`` (:mod:`host_trainer.cli`) wires these together: the
configuration, the job manager, the micro service, health and metrics.
"""

from host_trainer.config import (
    RELOADABLE,
    ConfigError,
    HostConfig,
    env_var,
    load_config,
    redact_url,
)
from host_trainer.health import (
    DeviceProbe,
    ErrorWindow,
    HealthMonitor,
    JobCounts,
    LatencyTracker,
    parse_smi,
)
from host_trainer.logging_setup import configure_logging, set_level
from host_trainer.manager import JobManager
from host_trainer.metrics import HostMetrics, MetricsServer, package_version, serve_metrics
from host_trainer.service import JobService, TrainingHostService, new_error_id, service_version

__all__ = [
    "RELOADABLE",
    "ConfigError",
    "DeviceProbe",
    "ErrorWindow",
    "HealthMonitor",
    "HostConfig",
    "HostMetrics",
    "JobCounts",
    "JobManager",
    "JobService",
    "LatencyTracker",
    "MetricsServer",
    "TrainingHostService",
    "configure_logging",
    "env_var",
    "load_config",
    "new_error_id",
    "package_version",
    "parse_smi",
    "redact_url",
    "serve_metrics",
    "service_version",
    "set_level",
]

"""What a host trainer and the in-container fallback share to run a job."""

from job_runtime.records import JobRecord, request_digest, utcnow
from job_runtime.registry import JobRegistry, artifact_name, newest_first
from job_runtime.runner import JobRunner, RunnerSettings
from job_runtime.sequencer import EventLog, ProgressSequencer
from job_runtime.worker import WorkerHandle

__all__ = [
    "EventLog",
    "JobRecord",
    "JobRegistry",
    "JobRunner",
    "ProgressSequencer",
    "RunnerSettings",
    "WorkerHandle",
    "artifact_name",
    "newest_first",
    "request_digest",
    "utcnow",
]

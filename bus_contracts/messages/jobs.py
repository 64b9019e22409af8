"""``training.jobs``: list the jobs the registry knows."""

from __future__ import annotations

from typing import Annotated

import msgspec

from bus_contracts import bounds
from bus_contracts.base import Reply, Request
from bus_contracts.messages.common import Executor, JobState
from bus_contracts.messages.status import TrainingStatus


class ListJobs(Request, frozen=True, kw_only=True, tag="training.list_jobs"):
    states: Annotated[list[JobState], msgspec.Meta(max_length=6)] | None = None
    executor: Executor | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=bounds.MAX_JOBS_LIMIT)] = 50


class JobList(Reply, frozen=True, kw_only=True, tag="training.job_list"):
    jobs: list[TrainingStatus]
    total: int
    """How many jobs matched the filters, before ``limit`` (newest first)."""

"""Pydantic models of the gateway's own JSON bodies (those that are not plain
:mod:`simfarm.common.models`): they feed the OpenAPI document, and the API tests check
that real responses validate against them, so the document cannot drift from the code."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.models import Job, JobEvent
from simfarm.common.states import JobState


class FieldError(BaseModel):
    """One bad field of a request and why."""

    field: str = Field(description="dotted path of the field, e.g. `resources.cores`")
    reason: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the REST API."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="machine-readable kind, e.g. `validation_error`")
    detail: str = Field(description="human-readable explanation")
    fields: list[FieldError] = Field(default_factory=list)


class JobLinks(BaseModel):
    """Where to find more about a job."""

    model_config = ConfigDict(extra="forbid")

    self: str
    events: str
    cancel: str


class JobOut(Job):
    """A job as the API returns it: the job plus its links."""

    model_config = ConfigDict(extra="forbid")

    links: JobLinks


class JobListOut(BaseModel):
    """One page of jobs; pass ``next_cursor`` back as ``cursor`` for the next page."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobOut]
    next_cursor: str | None = None


class JobBatchOut(BaseModel):
    """Jobs read by id: those found, in the order asked; ``missing`` names the others
    (no such job, or one you may not see)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobOut]
    missing: list[str]


class EventListOut(BaseModel):
    """A job's events; pass ``last_id`` back as ``since`` to continue."""

    model_config = ConfigDict(extra="forbid")

    events: list[JobEvent]
    last_id: str | None = None


class HealthOut(BaseModel):
    """Service health."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="`ok`; `degraded` when Redis answers but refuses "
                        "writes (out of memory, cannot persist, a read-only replica: submits "
                        "get 507 or 503 meanwhile); `unavailable` when it does not answer")
    redis: str = Field(description="`ok`, or what is wrong with Redis")
    version: str
    nodes_alive: int | None = None
    jobs: dict[str, int] | None = Field(default=None, description="number of jobs per state")


class ListJobsQuery(BaseModel):
    """Query parameters of ``GET /api/v1/jobs``."""

    state: JobState | None = Field(
        default=None, description="only jobs in this state, in queue order"
    )
    limit: int = Field(default=50, ge=1, le=1000, description="page size")
    cursor: str | None = Field(
        default=None, description="`next_cursor` of the previous page", pattern=r"^[0-9]{1,20}$"
    )
    owner: str | None = Field(
        default=None, description="only this user's jobs (admins; others may name themselves)"
    )


class EventsQuery(BaseModel):
    """Query parameters of ``GET /api/v1/jobs/{job_id}/events``."""

    since: str | None = Field(
        default=None,
        description="return events after this event id (exclusive)",
        pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$",
    )
    limit: int = Field(default=1000, ge=1, le=10_000, description="most events returned")
    wait: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="long poll: with nothing new, wait up to this many seconds",
    )

"""Errors raised by the Python façades and the CLI."""

from __future__ import annotations

from typing import Any

from simfarm.common.errors import SimfarmError


class ApiError(SimfarmError):
    """The gateway answered with an error (4xx/5xx)."""

    def __init__(
        self, status: int, error: str, detail: str, fields: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = fields or []


class ConnectionFailed(SimfarmError):
    """The gateway could not be reached."""


class JobFailed(SimfarmError):
    """A waited-for job ended ``failed``."""

    def __init__(self, job: Any) -> None:
        super().__init__(f"job {job.id} failed: {job.error or job.reason or 'no reason given'}")
        self.job = job


class JobCancelled(SimfarmError):
    """A waited-for job ended ``cancelled``."""

    def __init__(self, job: Any) -> None:
        super().__init__(f"job {job.id} was cancelled: {job.reason or ''}".rstrip(": "))
        self.job = job

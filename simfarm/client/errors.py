"""Errors raised by the Python façades and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simfarm.common.errors import SimfarmError


class ApiError(SimfarmError):
    """The gateway answered with an error (4xx/5xx): ``status``, ``error``, ``detail`` and
    ``fields`` (each ``{field, reason}``) as in the REST API's error body."""

    def __init__(
        self, status: int, error: str, detail: str, fields: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = fields or []


class NotFound(ApiError):
    """404: no such job (or node)."""


class ConnectionFailed(SimfarmError):
    """The gateway could not be reached."""


class JobFailed(SimfarmError):
    """A waited-for job ended ``failed`` (``raise_on_failure=True``); ``job`` is the job."""

    def __init__(self, job: Any) -> None:
        super().__init__(f"job {job.id} failed: {job.error or job.reason or 'no reason given'}")
        self.job = job


class JobCancelled(SimfarmError):
    """A waited-for job ended ``cancelled`` (``raise_on_failure=True``); ``job`` is the job."""

    def __init__(self, job: Any) -> None:
        super().__init__(f"job {job.id} was cancelled: {job.reason or ''}".rstrip(": "))
        self.job = job


class WaitTimeout(SimfarmError, TimeoutError):
    """``wait``/``wait_all`` gave up; ``pending`` lists the jobs that had not finished.
    A subclass of the built-in ``TimeoutError``."""

    def __init__(self, pending: Sequence[str], timeout: float | None) -> None:
        shown = ", ".join(pending[:5]) + (" ..." if len(pending) > 5 else "")
        super().__init__(f"{len(pending)} job(s) not finished after {timeout} s: {shown}")
        self.pending = list(pending)
        self.timeout = timeout

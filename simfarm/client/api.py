"""The REST calls of the façades, without any I/O: each function returns an
:class:`Operation` (the request to send and how to read the answer). ``Client`` and
``AsyncClient`` only differ in how they send it, as httpx's ``Client`` and
``AsyncClient`` share request building and models."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from simfarm.client.errors import ApiError, NotFound
from simfarm.common.convergence import Convergence
from simfarm.common.license_pools import LicenseStatus
from simfarm.common.models import Job, JobBatch, JobEvent, JobPage, NodeInfo
from simfarm.common.states import JobState

T = TypeVar("T")
EVENTS_PAGE = 1000


@dataclass(frozen=True)
class Request:
    """One HTTP request relative to the gateway's base URL."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None

    def httpx_kwargs(self) -> dict[str, Any]:
        """Arguments of ``httpx.Client.request`` / ``httpx.AsyncClient.request``."""
        return {
            "method": self.method,
            "url": self.path,
            "params": self.params,
            "json": self.json,
            "headers": dict(self.headers),
            "timeout": self.timeout if self.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        }


@dataclass(frozen=True)
class Operation(Generic[T]):
    """A request and the function that turns its JSON answer into the result."""

    request: Request
    parse: Callable[[Any], T]

    def read(self, response: httpx.Response) -> T:
        """The result of the answer, or the typed error it carries."""
        if response.status_code >= 400:
            raise error_for(response.status_code, decode_json(response.content), response.text)
        return self.parse(response.json())


def decode_json(raw: bytes | bytearray | str | None) -> Any:
    """JSON of a body, or None when it is not JSON."""
    try:
        return json.loads(raw or b"")
    except ValueError:
        return None


def error_for(status: int, body: Any, text: str) -> ApiError:
    """The typed error for a failed answer (``body`` is its decoded JSON, if any)."""
    if isinstance(body, dict):
        error, detail, fields = (
            str(body.get("error", "error")),
            str(body.get("detail", text[:500])),
            body.get("fields") or [],
        )
    else:
        error, detail, fields = "error", text[:500] or f"HTTP {status}", []
    cls = NotFound if status == 404 else ApiError
    return cls(status, error, detail, fields)


def _job_path(job_id: str, *rest: str) -> str:
    return "/".join(["/api/v1/jobs", quote(job_id, safe=""), *rest])


def submit(body: Mapping[str, Any], idempotency_key: str | None = None) -> Operation[Job]:
    """POST a job spec."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Operation(
        Request("POST", "/api/v1/jobs", json=dict(body), headers=headers), Job.model_validate
    )


def get(job_id: str) -> Operation[Job]:
    """GET one job."""
    return Operation(Request("GET", _job_path(job_id)), Job.model_validate)


def query_jobs(job_ids: Sequence[str]) -> Operation[JobBatch]:
    """Read up to :data:`~simfarm.common.models.MAX_JOBS_PER_QUERY` jobs by id in one
    request (``POST /api/v1/jobs/query``)."""
    return Operation(Request("POST", "/api/v1/jobs/query", json={"ids": list(job_ids)}),
                     JobBatch.model_validate)


def progress(job_id: str) -> Operation[Convergence]:
    """GET a job's solve progress as a series (adaptive passes, sweep)."""
    return Operation(Request("GET", _job_path(job_id, "progress")), Convergence.model_validate)


def list_jobs(
    state: JobState | str | None = None, limit: int = 50, cursor: str | None = None
) -> Operation[JobPage]:
    """GET one page of jobs."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = str(state)
    if cursor:
        params["cursor"] = cursor
    return Operation(Request("GET", "/api/v1/jobs", params=params), JobPage.model_validate)


def cancel(job_id: str) -> Operation[Job]:
    """Cancel a job."""
    return Operation(Request("POST", _job_path(job_id, "cancel")), Job.model_validate)


def set_priority(job_id: str, priority: int) -> Operation[Job]:
    """Change a pending job's priority (``PATCH``)."""
    return Operation(
        Request("PATCH", _job_path(job_id), json={"priority": priority}), Job.model_validate
    )


def events(
    job_id: str, since: str | None = None, wait: float = 0, limit: int = EVENTS_PAGE
) -> Operation[list[JobEvent]]:
    """The job's events after ``since``; with ``wait`` a long poll."""
    params: dict[str, Any] = {"limit": limit}
    if since:
        params["since"] = since
    if wait:
        params["wait"] = wait
    return Operation(
        Request("GET", _job_path(job_id, "events"), params=params, timeout=wait + 30),
        lambda body: [JobEvent.model_validate(e) for e in body["events"]],
    )


def _nodes(body: Any) -> list[NodeInfo]:
    rows: list[Any] = (
        body.get("workers") or body.get("nodes") or [] if isinstance(body, dict) else list(body)
    )
    return [NodeInfo.model_validate(row) for row in rows]


def workers() -> Operation[list[NodeInfo]]:
    """GET the registered worker nodes."""
    return Operation(Request("GET", "/api/v1/workers"), _nodes)


def licenses() -> Operation[list[LicenseStatus]]:
    """GET the farm's floating licence pools."""
    return Operation(Request("GET", "/api/v1/licenses"),
                     lambda body: [LicenseStatus.model_validate(p) for p in body["licenses"]])


def _limits_path(node: str) -> str:
    return f"/api/v1/workers/{quote(node, safe='')}/limits"


def limits(node: str) -> Operation[dict[str, Any]]:
    """GET a node's local limits."""
    return Operation(Request("GET", _limits_path(node)), dict)


def set_limits(node: str, changes: Mapping[str, Any]) -> Operation[dict[str, Any]]:
    """Change some of a node's local limits (``PATCH``); returns them all."""
    return Operation(Request("PATCH", _limits_path(node), json=dict(changes)), dict)


def health() -> Operation[dict[str, Any]]:
    """GET the gateway's health."""
    return Operation(Request("GET", "/api/v1/health"), dict)

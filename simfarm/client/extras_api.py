"""The REST calls of sweeps, workflows, resubmit, history and audit as I/O-free
operations, shared by :class:`Client` and :class:`AsyncClient` (see
:mod:`simfarm.client.api`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from simfarm.client.api import Operation, Request
from simfarm.common.models import Job, JobSpec
from simfarm.common.sweeps import Sweep, SweepSpec


def _sweep_path(sweep_id: str, *rest: str) -> str:
    return "/".join(["/api/v1/sweeps", quote(sweep_id, safe=""), *rest])


def sweep_body(spec: SweepSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of a sweep submission."""
    if isinstance(spec, SweepSpec):
        return spec.model_dump(mode="json", exclude_none=True)
    return dict(spec)


def submit_sweep(spec: SweepSpec | Mapping[str, Any]) -> Operation[Sweep]:
    """POST a sweep."""
    return Operation(Request("POST", "/api/v1/sweeps", json=sweep_body(spec)),
                     Sweep.model_validate)


def get_sweep(sweep_id: str) -> Operation[Sweep]:
    """GET one sweep with its children."""
    return Operation(Request("GET", _sweep_path(sweep_id)), Sweep.model_validate)


def cancel_sweep(sweep_id: str) -> Operation[Sweep]:
    """Cancel every unfinished child of a sweep."""
    return Operation(Request("POST", _sweep_path(sweep_id, "cancel")), Sweep.model_validate)


def resubmit(job_id: str, priority: int | None = None) -> Operation[Job]:
    """Run a job's stored spec again as a new, linked job."""
    body = {} if priority is None else {"priority": priority}
    path = f"/api/v1/jobs/{quote(job_id, safe='')}/resubmit"
    return Operation(Request("POST", path, json=body), Job.model_validate)


def history(since: float | None = None, until: float | None = None, state: str | None = None,
            limit: int = 50, cursor: str | None = None) -> Operation[dict[str, Any]]:
    """GET finished jobs newest first (``jobs``, ``next_cursor``)."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("since", since), ("until", until), ("state", state),
                        ("cursor", cursor)):
        if value is not None:
            params[name] = value
    return Operation(Request("GET", "/api/v1/history", params=params), dict)


def audit(**filters: Any) -> Operation[list[dict[str, Any]]]:
    """GET audit entries (admins): ``who``, ``action``, ``target``, ``since``, ``until``,
    ``before``, ``limit``."""
    params = {k: v for k, v in filters.items() if v is not None}
    return Operation(Request("GET", "/api/v1/audit", params=params),
                     lambda body: list(body["entries"]))


def submit_workflow(jobs: Mapping[str, Any]) -> Operation[dict[str, Job]]:
    """POST several jobs at once that depend on each other by local name."""
    body = {"jobs": {name: (spec.submit_body() if isinstance(spec, JobSpec) else dict(spec))
                     for name, spec in jobs.items()}}
    return Operation(Request("POST", "/api/v1/workflows", json=body),
                     lambda out: {n: Job.model_validate(j) for n, j in out["jobs"].items()})

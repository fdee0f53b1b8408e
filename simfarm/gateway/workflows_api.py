"""Workflows: several jobs submitted at once whose dependencies name each other by
local names (``{"jobs": {"mesh": {...}, "solve": {"depends_on": {"after_ok": ["mesh"]}}}}``).
Local names become the new jobs' ids; other names must be existing job or sweep ids.
A cycle among the local names is refused (422) before anything is created."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simfarm.common.deps import Dependencies
from simfarm.common.models import Job, JobSpec
from simfarm.common.store import new_job_id
from simfarm.gateway.admission import Admission, admit_all
from simfarm.gateway.auth import owner_for_submit
from simfarm.gateway.dependencies import resolve_dependencies
from simfarm.gateway.errors import ApiError
from simfarm.gateway.jobs_api import job_body
from simfarm.gateway.openapi import document
from simfarm.gateway.parsing import parse_body
from simfarm.gateway.services import services

bp = Blueprint("workflows", __name__, url_prefix="/api/v1")
MAX_JOBS = 1000
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class WorkflowSpec(BaseModel):
    """Jobs by local name; ``depends_on`` may name other jobs of the workflow."""

    model_config = ConfigDict(extra="forbid")

    jobs: dict[str, JobSpec] = Field(description="local name -> job spec")

    @field_validator("jobs")
    @classmethod
    def _check_jobs(cls, value: dict[str, JobSpec]) -> dict[str, JobSpec]:
        if not value:
            raise ValueError("give at least one job")
        if len(value) > MAX_JOBS:
            raise ValueError(f"at most {MAX_JOBS} jobs")
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"job name {name!r}: 1-64 of A-Z a-z 0-9 _ -")
        return value


class WorkflowOut(BaseModel):
    """The created jobs by local name."""

    jobs: dict[str, Job]


def _order(spec: WorkflowSpec) -> list[str]:
    """Local names in dependency order; 422 naming a cycle."""
    edges = {name: [d for d in (job.depends_on or Dependencies()).ids() if d in spec.jobs]
             for name, job in spec.jobs.items()}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name):], name])
            raise ApiError(422, "validation_error", f"dependency cycle: {cycle}",
                           [{"field": f"jobs.{name}.depends_on", "reason": f"cycle {cycle}"}])
        state[name] = 1
        for dep in edges[name]:
            visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in spec.jobs:
        visit(name, [])
    return order


@bp.post("/workflows")
@document(tags=["jobs"], body=WorkflowSpec, responses={201: WorkflowOut},
          errors=(400, 413, 415, 422, 429))
def submit_workflow() -> tuple[Response, int]:
    """Submit several jobs at once, depending on each other by local name.

    Unknown names and cycles are refused (422) before any job is created; the jobs are
    created in dependency order and held until their dependencies are met."""
    svc = services()
    spec = parse_body(WorkflowSpec)
    owners = {name: owner_for_submit(job.owner) for name, job in spec.jobs.items()}
    order = _order(spec)
    ids = {name: new_job_id() for name in spec.jobs}
    jobs: dict[str, Admission] = {}
    for name in order:  # local names are the new jobs' ids; other ids resolved here
        by_condition = (spec.jobs[name].depends_on or Dependencies()).by_condition()
        outside = resolve_dependencies(svc, Dependencies.model_validate(
            {c: [i for i in v if i not in spec.jobs] for c, v in by_condition.items()}),
            where=f"jobs.{name}.depends_on")
        resolved: dict[str, list[str]] = {
            c: [*(ids[i] for i in v if i in spec.jobs), *outside.get(c, [])]
            for c, v in by_condition.items()}
        jobs[name] = Admission(spec.jobs[name], owner=owners[name], where=f"jobs.{name}",
                               job_id=ids[name], dependencies=resolved)
    admit_all(svc, list(jobs.values()))
    stored = {j.id: j for j in svc.jobs.get_many(list(ids.values()))}
    return jsonify({"jobs": {name: job_body(stored[ids[name]]) for name in order}}), 201

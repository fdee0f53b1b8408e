"""``POST /api/v1/jobs/batch``: many jobs in one request, stored in pipelined round trips.

Every spec is validated and checked exactly as ``POST /api/v1/jobs`` does before any is
stored, so a batch is accepted whole or refused whole (422 naming ``jobs.<i>.<field>``).
Jobs with dependencies go through the same path as single submissions (they may be
held); the others are created together.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.job_paths import check_spec_paths
from simfarm.common.models import JobSpec
from simfarm.common.paths import PathRejected
from simfarm.common.store import new_job_id
from simfarm.gateway.auth import owner_for_submit
from simfarm.gateway.errors import ApiError
from simfarm.gateway.fit_check import check_fits_some_node
from simfarm.gateway.hfss_checks import check_hfss_spec
from simfarm.gateway.jobs_api import job_body
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.openapi.bodies import JobOut
from simfarm.gateway.requests import parse_body
from simfarm.gateway.services import services
from simfarm.gateway.submission import check_files, create_job

bp = Blueprint("batch", __name__, url_prefix="/api/v1")
MAX_BATCH = 1000


class BatchIn(BaseModel):
    """Jobs to submit together."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSpec] = Field(min_length=1, max_length=MAX_BATCH,
                                description=f"1 to {MAX_BATCH} job specs")


class BatchOut(BaseModel):
    """The stored jobs, in the order submitted."""

    jobs: list[JobOut]


def _checked(index: int, spec: JobSpec) -> str | None:
    """Run the single-submit checks on one spec; its owner. Errors name ``jobs.<i>``."""
    svc = services()
    try:
        owner = owner_for_submit(spec.owner)
        check_spec_paths(spec, svc.settings.allowed_roots)
        if spec.kind == "hfss":
            check_hfss_spec(svc, spec)
        check_fits_some_node(svc, spec)
        check_files(svc, spec)
    except PathRejected as exc:
        raise ApiError(422, "validation_error", f"jobs.{index}.{exc}",
                       [{"field": f"jobs.{index}.{exc.field}", "reason": exc.reason}]) from None
    except ApiError as exc:
        exc.fields = [{**f, "field": f"jobs.{index}.{f.get('field', '')}".rstrip(".")}
                      for f in exc.fields] or [{"field": f"jobs.{index}", "reason": exc.detail}]
        exc.detail = f"jobs.{index}: {exc.detail}"
        raise
    return owner


@bp.post("/jobs/batch")
@document(
    tags=["jobs"],
    body=BatchIn,
    responses={201: Body(BatchOut, "all stored")},
    errors=(400, 403, 413, 415, 422),
)
def submit_batch() -> tuple[Response, int]:
    """Submit up to 1000 jobs at once; all are checked first, then stored together."""
    batch = parse_body(BatchIn)
    svc = services()
    owners = [_checked(i, spec) for i, spec in enumerate(batch.jobs)]
    order: list[str] = []
    by_owner: dict[str | None, list[tuple[str, JobSpec, dict[str, Any]]]] = {}
    for spec, owner in zip(batch.jobs, owners, strict=True):
        if spec.depends_on is not None and not spec.depends_on.is_empty():
            job, _ = create_job(svc, spec, owner=owner)
            order.append(job.id)
            continue
        item: tuple[str, JobSpec, dict[str, Any]] = (new_job_id(), spec, {})
        by_owner.setdefault(owner, []).append(item)
        order.append(item[0])
    for owner, items in by_owner.items():
        svc.jobs.create_batch(items, owner=owner)
    svc.jobs.nudge_dispatcher()
    jobs = {j.id: j for j in svc.jobs.get_many(order)}
    return jsonify({"jobs": [job_body(jobs[i]) for i in order if i in jobs]}), 201

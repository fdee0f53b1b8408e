"""``POST /api/v1/jobs/batch``: many jobs in one request, stored in pipelined round trips.

Every spec goes through the same admission as ``POST /api/v1/jobs`` before any is
stored, so a batch is accepted whole or refused whole (422 naming ``jobs.<i>.<field>``).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.models import JobSpec
from simfarm.gateway.admission import Admission, admit_all, placed
from simfarm.gateway.auth import owner_for_submit
from simfarm.gateway.errors import ApiError
from simfarm.gateway.jobs_api import job_body
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.openapi.bodies import JobOut
from simfarm.gateway.parsing import parse_body
from simfarm.gateway.services import services

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


def _owner(index: int, spec: JobSpec) -> str | None:
    try:
        return owner_for_submit(spec.owner)
    except ApiError as exc:
        raise placed(exc, f"jobs.{index}") from None


@bp.post("/jobs/batch")
@document(
    tags=["jobs"],
    body=BatchIn,
    responses={201: Body(BatchOut, "all stored")},
    errors=(400, 403, 413, 415, 422, 429),
)
def submit_batch() -> tuple[Response, int]:
    """Submit up to 1000 jobs at once; all are checked first, then stored together."""
    batch = parse_body(BatchIn)
    svc = services()
    ids = admit_all(svc, [Admission(spec, owner=_owner(i, spec), where=f"jobs.{i}")
                          for i, spec in enumerate(batch.jobs)])
    jobs = {j.id: j for j in svc.jobs.get_many(ids)}
    return jsonify({"jobs": [job_body(jobs[i]) for i in ids if i in jobs]}), 201

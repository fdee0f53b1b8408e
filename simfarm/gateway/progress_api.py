"""``GET /api/v1/jobs/{id}/progress``: a job's solve progress as a series (every adaptive
pass with its Max Mag. Delta S, the target, the sweep), not only the latest record."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from simfarm.common.convergence import Convergence, from_events, from_series
from simfarm.gateway.auth import require_visible
from simfarm.gateway.openapi import document
from simfarm.gateway.parsing import check_job_id
from simfarm.gateway.services import services

bp = Blueprint("progress", __name__, url_prefix="/api/v1")
MAX_EVENTS = 10_000


def convergence_of(job_id: str) -> Convergence:
    """The job's convergence history (the caller checked the job may be seen)."""
    jobs = services().jobs
    job = jobs.get(job_id)
    series = jobs.convergence(job_id)
    if series is not None:
        return from_series(job.id, job.state, series, job.progress)
    return from_events(job.id, job.state, jobs.events(job_id, limit=MAX_EVENTS), job.progress)


@bp.get("/jobs/<job_id>/progress")
@document(tags=["jobs"], path_params={"job_id": "the job's id"},
          responses={200: Convergence}, errors=(404,))
def job_progress(job_id: str) -> Response:
    """The job's progress as a series: adaptive passes (Max Mag. Delta S per pass), the
    setup's target and maximum passes, the frequency sweep's solved points, and the
    latest progress record. Empty lists for a job that reported no solver progress."""
    require_visible(check_job_id(job_id))
    return jsonify(convergence_of(job_id).model_dump(mode="json", by_alias=True))

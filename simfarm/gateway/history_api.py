"""History routes: finished jobs newest first, and resubmitting a job."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.models import Priority
from simfarm.common.states import JobState
from simfarm.common.store.history import HistoryStore
from simfarm.gateway.admission import Admission, admit
from simfarm.gateway.auth import can_see, require_visible
from simfarm.gateway.errors import field_error
from simfarm.gateway.files_bodies import HistoryOut
from simfarm.gateway.jobs_api import job_body
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.openapi.bodies import JobOut
from simfarm.gateway.parsing import check_job_id, float_arg, int_arg, json_body
from simfarm.gateway.services import services

bp = Blueprint("history", __name__, url_prefix="/api/v1")
_CURSOR = re.compile(r"^[0-9.e+\-]{1,32}:[A-Za-z0-9_\-]{1,128}$")
FINAL = ("completed", "failed", "cancelled")


class ResubmitBody(BaseModel):
    """Optional changes for the new job."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = Field(default=None, description="default: the old job's")


class HistoryQuery(BaseModel):
    """Query parameters of ``GET /api/v1/history``."""

    state: str | None = Field(default=None, description="completed, failed or cancelled")
    since: float | None = Field(default=None, description="ended at or after (epoch seconds)")
    until: float | None = Field(default=None, description="ended at or before (epoch seconds)")
    limit: int = Field(default=50, ge=1, le=1000)
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page")


@bp.post("/jobs/<job_id>/resubmit")
@document(tags=["jobs"], path_params={"job_id": "the job to run again"}, body=ResubmitBody,
          responses={201: Body(JobOut, "the new job")}, errors=(404, 422, 429))
def resubmit(job_id: str) -> tuple[Response, int, dict[str, str]]:
    """Submit a new job from a job's stored spec, linked to it: the new job's
    ``resubmit_of`` names the old one, whose ``resubmitted_as`` names the newest.

    Dependencies are kept (as resolved ids); a staged job reuses its uploaded project."""
    svc = services()
    require_visible(check_job_id(job_id))
    old = svc.jobs.get(job_id)
    changes = ResubmitBody()
    if request.content_length:
        changes = ResubmitBody.model_validate(json_body())
    spec = old.spec
    if changes.priority is not None:
        spec = spec.model_copy(update={"priority": changes.priority})
    deps = old.dependencies or {}
    for condition, ids in deps.items():
        for n, dep in enumerate(ids):
            if not svc.jobs.exists(dep):
                raise field_error(f"depends_on.{condition}.{n}",
                                  f"dependency {dep} no longer exists (expired)")
    extra = {"resubmit_of": old.id, "variation": old.variation}
    job, _ = admit(svc, Admission(spec, owner=old.owner, extra=extra,
                                  dependencies=deps or None))
    svc.jobs.update_fields(old.id, {"resubmitted_as": job.id})
    return jsonify(job_body(job)), 201, {"Location": url_for("jobs.get_job", job_id=job.id)}


@bp.get("/history")
@document(tags=["jobs"], query=HistoryQuery, responses={200: HistoryOut}, errors=(422,))
def history() -> Response:
    """Finished jobs, newest first: one range read on the finished-jobs index, so pages
    stay fast with any number of kept jobs."""
    state_arg = request.args.get("state") or None
    if state_arg is not None and state_arg not in FINAL:
        raise field_error("state", f"must be one of {', '.join(FINAL)}")
    cursor = request.args.get("cursor") or None
    if cursor is not None and not _CURSOR.match(cursor):
        raise field_error("cursor", "must be the next_cursor of a previous page")
    since = float_arg("since", -1.0, 0.0, 1e11) if request.args.get("since") else None
    until = float_arg("until", -1.0, 0.0, 1e11) if request.args.get("until") else None
    jobs, nxt = HistoryStore(services().jobs).page(
        since=since, until=until, cursor=cursor, limit=int_arg("limit", 50, 1, 1000),
        state=JobState(state_arg) if state_arg else None)
    # Another user's jobs are left out of the page (pages may come out shorter).
    return jsonify({"jobs": [job_body(j) for j in jobs if can_see(j.owner)],
                    "next_cursor": nxt})

"""REST routes for jobs: ``/api/v1/jobs`` and below."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simfarm.common.models import MAX_JOBS_PER_QUERY, Job, JobQuery, JobSpec
from simfarm.common.states import JobState
from simfarm.gateway.admission import Admission, admit
from simfarm.gateway.auth import (
    can_see,
    owner_for_submit,
    require_visible,
    visible_owner_filter,
)
from simfarm.gateway.errors import ApiError, field_error
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.openapi.bodies import (
    EventListOut,
    EventsQuery,
    JobBatchOut,
    JobListOut,
    JobOut,
    ListJobsQuery,
)
from simfarm.gateway.parsing import (
    JOB_ID,
    check_job_id,
    float_arg,
    idempotency_key,
    int_arg,
    json_body,
    parse_body,
)
from simfarm.gateway.services import services

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")
_CURSOR = re.compile(r"^[0-9]{1,20}$")
_JOB = {"job_id": "the job's id"}
_EVENT_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")


def job_links(job_id: str) -> dict[str, str]:
    """Hypermedia links of a job (built by hand: url_for costs more than the rest of
    a submission's answer; job ids need no quoting)."""
    base = f"{request.script_root}/api/v1/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}


def job_body(job: Job) -> dict[str, Any]:
    """A job as the API shows it: the model plus its links."""
    body = job.model_dump(mode="json")
    body["links"] = job_links(job.id)
    return body


@bp.post("/jobs")
@document(
    tags=["jobs"],
    body=JobSpec,
    headers={"Idempotency-Key": "retrying with the same key returns the same job (24 h)"},
    responses={201: Body(JobOut, "created"), 200: Body(JobOut, "idempotent replay")},
    errors=(400, 403, 413, 415, 422, 429),
)
def submit_job() -> tuple[Response, int, dict[str, str]]:
    """Submit a job; 201 with the job and Location, 200 on an idempotent replay."""
    spec = parse_body(JobSpec)
    owner = owner_for_submit(spec.owner)
    key = idempotency_key()
    if key is not None and owner:
        key = f"{owner}/{key}"  # one user's key never replays another user's job
    job, created = admit(services(), Admission(spec, owner=owner, idempotency_key=key))
    body = job_body(job)
    return jsonify(body), (201 if created else 200), {"Location": body["links"]["self"]}


@bp.get("/jobs")
@document(
    tags=["jobs"], query=ListJobsQuery, responses={200: JobListOut}, errors=(403, 422)
)
def list_jobs() -> Response:
    """List jobs: ``state`` and ``owner`` filters, ``limit`` and ``cursor`` paging.

    Users see their own jobs; admins see everyone's, or one ``owner``'s."""
    state_arg = request.args.get("state")
    state = None
    if state_arg:
        try:
            state = JobState(state_arg)
        except ValueError:
            allowed = ", ".join(s.value for s in JobState)
            raise field_error("state", f"must be one of {allowed}") from None
    cursor = request.args.get("cursor") or None
    if cursor is not None and not _CURSOR.match(cursor):
        raise field_error("cursor", "must be the next_cursor of a previous page")
    limit = int_arg("limit", 50, 1, 1000)
    owner = visible_owner_filter(request.args.get("owner"))
    page = services().jobs.list_jobs(state=state, owner=owner, cursor=cursor, limit=limit)
    return jsonify({"jobs": [job_body(j) for j in page.jobs], "next_cursor": page.next_cursor})


def _query_ids() -> list[str]:
    """The ids of a job query's body, each once, in order (400 naming what is wrong)."""
    data = json_body()
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not ids:
        raise field_error("ids", "send {\"ids\": [...]}: a list of 1 to "
                          f"{MAX_JOBS_PER_QUERY} job ids", status=400)
    if len(ids) > MAX_JOBS_PER_QUERY:
        raise field_error("ids", f"{len(ids)} ids: at most {MAX_JOBS_PER_QUERY} per request",
                          status=400)
    for n, job_id in enumerate(ids):
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise field_error(f"ids.{n}", "not a job id (1-128 letters, digits, '_' or '-')",
                              status=400)
    return list(dict.fromkeys(ids))


@bp.post("/jobs/query")
@document(tags=["jobs"], body=JobQuery, responses={200: JobBatchOut}, errors=(400, 415))
def query_jobs() -> Response:
    """Many jobs by id in one request (a read, though a POST: a thousand ids do not fit
    in a URL).

    The jobs found come in the order asked; ``missing`` lists the ids of the others
    (no such job, or another user's: as ``GET /api/v1/jobs/<id>`` answers 404). At most
    1000 ids; too many, or an id that cannot be one, is a 400."""
    ids = _query_ids()
    found = {j.id: j for j in services().jobs.get_many(ids) if can_see(j.owner)}
    return jsonify({"jobs": [job_body(found[i]) for i in ids if i in found],
                    "missing": [i for i in ids if i not in found]})


@bp.get("/jobs/<job_id>")
@document(tags=["jobs"], path_params=_JOB, responses={200: JobOut}, errors=(404,))
def get_job(job_id: str) -> Response:
    """One job (another user's job is 404)."""
    job = services().jobs.get(check_job_id(job_id))
    if not can_see(job.owner):
        raise ApiError(404, "not_found", f"job {job_id} not found")
    return jsonify(job_body(job))


@bp.post("/jobs/<job_id>/cancel")
@document(
    tags=["jobs"],
    path_params=_JOB,
    responses={200: Body(JobOut, "cancelled"), 202: Body(JobOut, "the worker is stopping it")},
    errors=(404, 409),
)
def cancel_job(job_id: str) -> tuple[Response, int]:
    """Cancel a job: 200 when cancelled now, 202 when its worker is stopping it,
    409 when it already finished."""
    jobs = services().jobs
    require_visible(check_job_id(job_id))
    status = jobs.request_cancel(job_id)
    job = jobs.get(job_id)
    if status == "cancelled":
        jobs.nudge_dispatcher()
    return jsonify(job_body(job)), (200 if status == "cancelled" else 202)


@bp.get("/jobs/<job_id>/events")
@document(
    tags=["jobs"], path_params=_JOB, query=EventsQuery, responses={200: EventListOut},
    errors=(404, 422),
)
def job_events(job_id: str) -> Response:
    """The job's events after ``since`` (exclusive). With ``wait`` > 0 and nothing new,
    waits up to that many seconds for the next event (long poll)."""
    jobs = services().jobs
    check_job_id(job_id)
    since = request.args.get("since") or None
    if since is not None and not _EVENT_ID.match(since):
        raise field_error("since", "must be an event id such as 1700000000000-0")
    limit = int_arg("limit", 1000, 1, 10_000)
    wait = float_arg("wait", 0.0, 0.0, 60.0)
    require_visible(job_id)
    events = jobs.events(job_id, since=since, limit=limit)
    if not events and wait > 0:
        events = jobs.wait_events(job_id, since=since or "0-0", timeout_s=wait, limit=limit)
    last = events[-1].id if events else since
    return jsonify({"events": [e.model_dump(mode="json") for e in events], "last_id": last})

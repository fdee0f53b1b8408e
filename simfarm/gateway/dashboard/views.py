"""Dashboard pages: jobs table, job page, workers, overview, usage, submit form, and
their assets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, send_from_directory
from pydantic import BaseModel, Field, ValidationError

from simfarm import __version__
from simfarm.common.errors import JobNotFound
from simfarm.common.hfss import SchedulerType
from simfarm.common.models import Job, JobEvent
from simfarm.common.states import JobState
from simfarm.common.store.notify import NotifyStore
from simfarm.gateway.auth import can_see, public, visible_owner_filter
from simfarm.gateway.dashboard import format as fmt
from simfarm.gateway.errors import validation_fields
from simfarm.gateway.licenses_api import pool_statuses
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.parsing import JOB_ID
from simfarm.gateway.services import services

bp = Blueprint("dashboard", __name__, template_folder="templates")
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = frozenset(p.name for p in STATIC.iterdir()) if STATIC.is_dir() else frozenset()
LOG_TAIL = 500
MAX_EVENTS = 10_000
_HTML = Body(None, "HTML page", media_type="text/html")


class JobsPageQuery(BaseModel):
    """Filters and paging of the jobs table."""

    state: JobState | None = Field(default=None, description="only jobs in this state")
    owner: str | None = Field(default=None, max_length=200, description="only this owner's jobs")
    cursor: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$",
                               description="`next_cursor` of the previous page")
    limit: int = Field(default=50, ge=1, le=500, description="rows per page")


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"fmt": fmt, "now": time.time(), "version": __version__, "states": list(JobState)}


def _query() -> tuple[JobsPageQuery, list[dict[str, str]]]:
    raw = {k: v for k, v in request.args.items() if v != ""}
    try:
        return JobsPageQuery.model_validate(raw), []
    except ValidationError as exc:
        return JobsPageQuery(), validation_fields(exc)


@bp.get("/")
@document(tags=["dashboard"], query=JobsPageQuery, responses={200: _HTML, 422: _HTML},
          errors=(403,))
def jobs_page() -> tuple[str, int]:
    """Jobs table with state/owner filters and cursor paging (O(page) at any job count)."""
    query, errors = _query()
    svc = services()
    owner = visible_owner_filter(query.owner)
    # read before the page: live updates start there, so a change made while the page
    # loads and its WebSocket opens is not missed
    last_id = svc.jobs.last_event_id()
    page = svc.jobs.list_jobs(state=query.state, owner=owner, cursor=query.cursor,
                              limit=query.limit)
    html = render_template("jobs.html", page=page, query=query, errors=errors,
                           counts=svc.jobs.counts(), last_id=last_id)
    return html, 422 if errors else 200


def _split_events(events: list[JobEvent]) -> tuple[list[JobEvent], list[JobEvent]]:
    timeline = [e for e in events if e.type == "state"]
    logs = [e for e in events if e.type == "log"][-LOG_TAIL:]
    return timeline, logs


@bp.get("/ui/jobs/<job_id>")
@document(tags=["dashboard"], path_params={"job_id": "the job's id"},
          responses={200: _HTML, 404: _HTML})
def job_page(job_id: str) -> tuple[str, int]:
    """One job: details, state timeline and log tail, updated live."""
    svc = services()
    try:
        if not JOB_ID.match(job_id):
            raise JobNotFound(job_id[:64])
        job = svc.jobs.get(job_id)
        if not can_see(job.owner):
            raise JobNotFound(job_id)
    except JobNotFound:
        return render_template("missing.html", job_id=job_id[:64]), 404
    events = svc.jobs.events(job_id, limit=MAX_EVENTS)
    timeline, logs = _split_events(events)
    touchstone = svc.jobs.touchstone_files(job_id)
    notified = NotifyStore(svc.redis, svc.settings.key_prefix).job_log(job_id)
    return render_template(
        "job.html", job=job, timeline=timeline, logs=logs, touchstone_files=touchstone,
        notifications=notified,
        last_id=events[-1].id if events else "0-0",
        spec_json=job.spec.model_dump_json(indent=2, exclude_defaults=True),
    ), 200


def _node_rows() -> list[dict[str, Any]]:
    svc = services()
    nodes = svc.nodes.all()
    jobs: dict[str, Job] = {
        j.id: j for j in svc.jobs.get_many([i for n in nodes for i in n.jobs])
    }
    rows = []
    for node in nodes:
        mine = [jobs[i] for i in node.jobs if i in jobs]
        used = sum(j.spec.resources.cores for j in mine)
        rows.append({"node": node, "jobs": mine, "cores_used": used,
                     "memory_used": sum(j.spec.resources.memory_mb for j in mine)})
    return rows


@bp.get("/ui/workers")
@document(tags=["dashboard"], responses={200: _HTML})
def workers_page() -> str:
    """Worker nodes: capacity, free resources, load, labels and running jobs."""
    return render_template("workers.html", rows=_node_rows())


@bp.get("/ui/overview")
@document(tags=["dashboard"], responses={200: _HTML})
def overview_page() -> str:
    """The farm over time: cores, queue, throughput and waiting time, updated live; the
    floating licence pools (what is free, held, used outside, waiting) and their use."""
    svc = services()
    return render_template("overview.html", bucket_s=svc.settings.stats_bucket_s,
                           pools=pool_statuses(svc))


@bp.get("/ui/usage")
@document(tags=["dashboard"], responses={200: _HTML})
def usage_page() -> str:
    """Usage over time: core-hours per UTC day by account (or user, or node), and the
    window's totals, from ``GET /api/v1/usage`` (admins see everyone, others their own)."""
    return render_template("usage.html")


@bp.get("/ui/submit")
@document(tags=["dashboard"], responses={200: _HTML})
def submit_page() -> str:
    """Form to submit a command or an HFSS job (sent to ``POST /api/v1/jobs``)."""
    return render_template("submit.html", schedulers=[s.value for s in SchedulerType])


@bp.get("/ui/assets/<name>")
@public
@document(tags=["dashboard"], path_params={"name": "file name"},
          responses={200: Body(None, "static file", media_type="application/octet-stream"),
                     404: "no such asset"})
def asset(name: str) -> Response:
    """The dashboard's CSS and JavaScript (shipped in the package)."""
    if name not in ASSETS:
        abort(404)
    return send_from_directory(STATIC, name, max_age=300)

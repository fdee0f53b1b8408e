"""PyEDB job-manager REST routes, with PyEDB's JSON shapes, served by the simfarm gateway.

Existing PyEDB clients (its web UI, ``submit_local_job``, ``submit_batch_jobs``,
scripts using ``requests``) keep working against simfarm.  Routes and shapes follow
``pyedb.workflows.job_manager.backend`` (``service.py`` and
``job_manager_handler.py``, pyedb 0.64-0.65).  Differences, all deliberate:

* jobs live in Redis and survive restarts; ``/jobs`` lists the newest
  :data:`MAX_LISTED` HFSS jobs;
* the client's ``scheduler_type`` is honoured (PyEDB overwrote it with the
  scheduler detected on the server); ``ansys_edt_path`` is still ignored unless
  ``"use_config_ansys_edt_path": true``: the node picks its newest AEDT, or the
  release named by ``"aedt_version"``;
* a submit goes through the same admission as ``POST /api/v1/jobs``: it is refused
  (422) when no worker has AEDT (of that release), instead of failing later with an
  IndexError, or when no node could ever grant the cores its machine list names;
* errors carry simfarm's ``detail`` and ``fields`` next to PyEDB's
  ``success``/``error``.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from simfarm.common.errors import DuplicateJob, IllegalTransition, JobNotFound
from simfarm.common.hfss import (
    HFSS3DLayoutBatchOptions,
    HFSSSimulationConfig,
    MachineNode,
    SchedulerType,
    pyedb_dict,
)
from simfarm.common.hfss_jobs import (
    SCHEDULER_LABEL,
    aedt_version_label,
    pyedb_priority,
    pyedb_state,
    pyedb_status,
    simfarm_priority,
)
from simfarm.common.models import Job, JobSpec, NodeInfo, ResourceRequest
from simfarm.common.states import JobState
from simfarm.common.store.rows import JobRow, RenderedRows
from simfarm.gateway.admission import Admission, check_all, store
from simfarm.gateway.auth import can_see, current_user
from simfarm.gateway.errors import ApiError, field_error, pyedb_error, validation_fields
from simfarm.gateway.parsing import JOB_ID
from simfarm.gateway.services import services

log = logging.getLogger(__name__)

#: longest stored PyEDB job id (route ids go up to 128 characters; a resubmission adds -N)
MAX_JOBID = 120

bp = Blueprint("pyedb", __name__)
MAX_LISTED = 1000
MAX_RESUBMITS = 50
_GB = 1024.0


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def _row_json(row: JobRow, timestamp: str) -> dict[str, Any]:
    """PyEDB's job shape, straight from the stored fields (no job model is built)."""
    stored = row.spec.get("hfss")
    config = (pyedb_dict(HFSSSimulationConfig.dump_of_stored(stored), timestamp)
              if stored is not None else {})
    return {
        "id": row.id,
        "user": row.owner or (config.get("user") if config else "unknown"),
        "config": config,
        "status": pyedb_state(row.state, row.native_id),
        "start_time": _iso(row.started_at),
        "end_time": _iso(row.finished_at),
        "return_code": row.exit_code,
        "scheduler_job_id": row.native_id,
        "priority": pyedb_priority(row.priority),
        "error": row.error,
        "progress": row.progress,
    }


def _alive_nodes() -> list[NodeInfo]:
    return [n for n in services().nodes.all() if n.alive]


def _usage(nodes: list[NodeInfo]) -> dict[str, Any]:
    """PyEDB's ResourceMonitor snapshot, summed over the farm's live nodes."""
    mem_total = sum(n.memory_mb_total for n in nodes) / _GB
    mem_free = sum(n.memory_mb_free for n in nodes) / _GB
    disk_total = sum(n.disk_mb_total for n in nodes) / _GB
    disk_free = sum(n.disk_mb_free for n in nodes) / _GB
    cores = sum(n.cores_total for n in nodes)
    busy = cores - sum(n.cores_free for n in nodes)

    def pct(part: float, whole: float) -> float:
        return round(100.0 * part / whole, 1) if whole else 0.0

    return {
        "cpu_percent": pct(busy, cores),
        "memory_percent": pct(mem_total - mem_free, mem_total),
        "memory_used_gb": round(mem_total - mem_free, 2),
        "memory_total_gb": round(mem_total, 2),
        "memory_free_gb": round(mem_free, 2),
        "disk_usage_percent": pct(disk_total - disk_free, disk_total),
        "disk_free_gb": round(disk_free, 2),
        "timestamp": datetime.now(UTC).isoformat(),
        "nodes": len(nodes),
    }


def _scheduler_type(nodes: list[NodeInfo]) -> SchedulerType:
    for node in nodes:
        value = node.labels.get(SCHEDULER_LABEL)
        if value and value in SchedulerType._value2member_map_:
            return SchedulerType(value)
    return SchedulerType.NONE


def _queue_stats(nodes: list[NodeInfo]) -> dict[str, Any]:
    jobs = services().jobs
    pending = jobs.list_jobs(state=JobState.PENDING, limit=1000).jobs
    by_priority: dict[str, int] = {}
    regular = 0
    for job in pending:
        prio = pyedb_priority(job.priority)
        if prio > 0:
            by_priority[str(prio)] = by_priority.get(str(prio), 0) + 1
        else:
            regular += 1
    return {
        "total_queued": jobs.count(JobState.PENDING),
        "regular_queue_size": regular,
        "priority_queues": by_priority,
        "running_jobs": jobs.count(JobState.RUNNING),
        "max_concurrent": sum(n.max_jobs for n in nodes),
    }


# ---------------------------------------------------------------- read-only routes


#: stands for the time of the listing in a rendered row (PyEDB stamps every config with
#: the time of the call; the rest of a row only changes with the job)
_NOW = "\x00listed-at\x00"
_NOW_JSON = json.dumps(_NOW).encode()


def _encoded_row(row: JobRow) -> tuple[bytes, ...]:
    """The row's JSON, cut where the listing's time goes."""
    return tuple(json.dumps(_row_json(row, _NOW), separators=(",", ":")).encode()
                 .split(_NOW_JSON))


_ROWS = RenderedRows(_encoded_row)


class _Listing(NamedTuple):
    """A listing as last rendered: the store's listing version it is current for, and
    its body cut where the listing's time goes."""

    version: str
    parts: list[bytes]


#: the last listing per owner (None: an admin's, of every job), bounded
_LISTINGS: dict[str | None, _Listing] = {}
_MAX_LISTINGS = 64


def _listing(owner: str | None) -> list[bytes]:
    """The body of ``owner``'s listing without its time: rendered again only when the
    store's listing version moved (one round trip to learn it), so a farm whose jobs did
    not change since the last call costs no row read."""
    jobs = services().jobs
    version = jobs.listing_version()  # before the rows: a change after it is seen next call
    cached = _LISTINGS.get(owner)
    if cached is not None and cached.version == version:
        return cached.parts
    rows = jobs.newest_rendered(_ROWS, owner=owner, kind="hfss", limit=MAX_LISTED)
    parts = (b"[" + b",".join(_NOW_JSON.join(row) for row in rows) + b"]\n").split(_NOW_JSON)
    if len(_LISTINGS) >= _MAX_LISTINGS:
        _LISTINGS.clear()
    _LISTINGS[owner] = _Listing(version, parts)
    return parts


@bp.get("/jobs")
@bp.get("/api/jobs")
def list_jobs() -> Response:
    """All HFSS jobs, newest first, as PyEDB lists them."""
    principal = current_user()
    now = json.dumps(datetime.now().isoformat()).encode()
    body = now.join(_listing(None if principal.admin else principal.user))
    return Response(body, mimetype="application/json")


@bp.get("/resources")
@bp.get("/api/resources")
def resources() -> Response:
    """CPU/memory/disk usage (farm-wide sum of live nodes)."""
    return jsonify(_usage(_alive_nodes()))


@bp.get("/queue")
@bp.get("/api/queue")
def queue() -> Response:
    """Queue statistics."""
    return jsonify(_queue_stats(_alive_nodes()))


@bp.get("/system/status")
def system_status() -> Response:
    """Scheduler, resource and pool status (PyEDB's ``JobManager`` shape)."""
    nodes = _alive_nodes()
    usage = _usage(nodes)
    stats = _queue_stats(nodes)
    scheduler = _scheduler_type(nodes)
    return jsonify({
        "scheduler_detection": {"active_scheduler": scheduler.name, "detected_by": "simfarm",
                                "backend_available": bool(nodes)},
        "resource_monitoring": {"active": bool(nodes), "last_update": usage["timestamp"],
                                **usage},
        "mode": scheduler.value,
        "local_pool": {"running_jobs": stats["running_jobs"],
                       "queued_jobs": stats["total_queued"],
                       "max_concurrent": stats["max_concurrent"]},
    })


@bp.post("/system/start_monitoring")
def start_monitoring() -> Response:
    """Resource monitoring is always on in simfarm (node heartbeats)."""
    return jsonify({"success": True, "message": "Resource monitoring already active"})


@bp.get("/api/scheduler_type")
def scheduler_type() -> Response:
    """The cluster scheduler a worker of this farm is attached to, else ``none``."""
    return jsonify({"scheduler_type": _scheduler_type(_alive_nodes()).value})


def _partitions() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in _alive_nodes():
        partitions = getattr(node, "partitions", None)
        if partitions:
            out.extend(dict(p) for p in partitions)
    return out


@bp.get("/api/cluster_partitions")
def cluster_partitions() -> Response:
    """Partitions/queues of attached clusters (empty without any)."""
    return jsonify(_partitions())


@bp.get("/scheduler/partitions")
def scheduler_partitions() -> Response:
    """Same as ``/api/cluster_partitions`` with PyEDB's 400 when no scheduler is attached."""
    if _scheduler_type(_alive_nodes()) is SchedulerType.NONE:
        return pyedb_error(400, "Scheduler not supported")
    return jsonify(_partitions())


@bp.get("/api/me")
def me() -> Response:
    """The calling user (from the gateway's auth when present, else the service account)."""
    user = current_user().user or getpass.getuser()
    return jsonify({"username": user})


def _job_or_404(job_id: str) -> Job | Response:
    if not JOB_ID.match(job_id):
        return pyedb_error(404, f"Job {job_id[:64]} not found")
    try:
        job = services().jobs.get(job_id)
    except JobNotFound:
        return pyedb_error(404, f"Job {job_id} not found")
    if not can_see(job.owner):
        return pyedb_error(404, f"Job {job_id} not found")
    return job


@bp.get("/api/jobs/<job_id>/log")
def job_log(job_id: str) -> Response | tuple[Response, int]:
    """The parsed solver log of a job: project, adaptive passes, sweep, convergence.
    204 while nothing has been parsed yet."""
    job = _job_or_404(job_id)
    if isinstance(job, Response):
        return job
    events = services().jobs.events(job.id, limit=10_000)
    passes: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    for event in events:
        if event.type == "progress" and event.data.get("adaptive_pass"):
            n = int(event.data["adaptive_pass"])
            passes[n] = {"pass_nr": n, "frequency": event.data.get("adaptive_frequency"),
                         "delta_s": event.data.get("delta_s"), "converged": False}
        elif event.type == "log" and str(event.data.get("line", "")).startswith(
                ("[error]", "[fatal]")):
            errors.append(str(event.data["line"]))
    progress = job.progress or {}
    if not passes and not progress:
        return Response(status=204)
    adaptive = [passes[n] for n in sorted(passes)]
    if adaptive and progress.get("converged"):
        adaptive[-1]["converged"] = True
    config = job.spec.hfss
    return jsonify({
        "project": {"name": config.project_path.replace("\\", "/").rsplit("/", 1)[-1]
                    if config else "", "file": config.project_path if config else "",
                    "design": config.design_name if config else ""},
        "adaptive": adaptive,
        "sweep": ({"type": progress.get("sweep"), "frequencies": progress.get("sweep_frequencies"),
                   "solved": progress.get("sweep_solved")} if progress.get("sweep") else None),
        "errors": errors,
        "progress": progress,
        "log_parser": {"is_converged": bool(progress.get("converged"))},
    }), 200


# ---------------------------------------------------------------- changing routes


def _submit_config(data: dict[str, Any]) -> HFSSSimulationConfig:
    raw = data.get("config")
    if not isinstance(raw, dict):
        raise ValueError("config: must be an object with the HFSS configuration")
    raw = dict(raw)
    if not data.get("use_config_ansys_edt_path"):
        raw["ansys_edt_path"] = ""  # as PyEDB: never trust a client's local path
    config = HFSSSimulationConfig.from_dict(raw)
    user = data.get("user") or raw.get("user")
    if not user or user == "unknown":
        user = current_user().user or getpass.getuser()
    config.user = str(user)
    if data.get("machine_nodes"):
        config.machine_nodes = [MachineNode(**n) for n in data["machine_nodes"]]
    if data.get("batch_options"):
        config.layout_options = HFSS3DLayoutBatchOptions(**data["batch_options"])
    return config


def _pyedb_fields(exc: ApiError) -> list[dict[str, str]]:
    """Admission's fields under PyEDB's names: ``hfss.x`` is ``config.x``, and the
    resources (which follow from the config) are ``config``."""
    out = []
    for f in exc.fields:
        name = f.get("field", "")
        if name.startswith("hfss."):
            name = "config." + name.removeprefix("hfss.")
        elif name.startswith("resources"):
            name = "config"
        out.append({**f, "field": name})
    return out


def scoped_jobid(jobid: str, owner: str | None, tokens: bool) -> str:
    """The id a PyEDB ``jobid`` is stored under: as sent in open mode (one user); with
    tokens prefixed by its owner (``alice_run1``), so that users' ids never meet and no
    answer tells a user that someone else's job has an id."""
    scoped = f"{re.sub(r'[^A-Za-z0-9_-]', '_', owner)}_{jobid}" if tokens and owner else jobid
    if len(scoped) > MAX_JOBID:  # room for the -N of a resubmission
        raise field_error("config.jobid", f"too long: at most {MAX_JOBID} characters"
                          + (f" with the owner's prefix {scoped[:-len(jobid)]!r}"
                             if scoped != jobid else ""))
    return scoped


def _create(job: Admission) -> Job:
    """Admit and store the job under the config's job id (PyEDB returns ``config.jobid``;
    with tokens the owner's name goes first, see :func:`scoped_jobid`).

    Resubmitting the id of a queued/running job returns that job, as PyEDB did; the id
    of a finished job gets a ``-2``, ``-3``... suffix (history is never overwritten).
    """
    svc = services()
    check_all(svc, [job])
    assert job.spec.hfss is not None
    base = scoped_jobid(job.spec.hfss.jobid, job.owner, bool(svc.settings.auth_tokens))
    for n in range(1, MAX_RESUBMITS + 1):
        job_id = base if n == 1 else f"{base}-{n}"
        job.job_id = job_id
        job.spec = job.spec.model_copy(update={
            "name": job_id, "hfss": job.spec.hfss.model_copy(update={"jobid": job_id})})
        try:
            stored, _ = store(svc, job)
        except DuplicateJob:
            existing = svc.jobs.get(job_id)
            if not can_see(existing.owner):
                continue  # another user's job id: never hand it back
            if not existing.final:
                return existing
            continue
        return stored
    raise ValueError(f"jobid {base}: too many resubmissions; use a new jobid")


@bp.post("/jobs/submit")
@bp.post("/api/submit")
def submit() -> Response | tuple[Response, int]:
    """Queue an HFSS job: ``{"config": {...}, "priority": 0}`` → ``{success, job_id, message}``."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return pyedb_error(400, "send a JSON object: {\"config\": {...}, \"priority\": 0}")
    try:
        priority = int(data.get("priority", 0))
        version = data.get("aedt_version") or None
        config = _submit_config(data)
        labels = {aedt_version_label(str(version)): "yes"} if version is not None else None
    except ValidationError as exc:
        fields = [{"field": f"config.{f['field']}", "reason": f["reason"]}
                  for f in validation_fields(exc)]
        return pyedb_error(422, "; ".join(f"{f['field']}: {f['reason']}" for f in fields),
                           fields)
    except (ValueError, TypeError) as exc:
        return pyedb_error(422, str(exc))
    # With tokens the owner is the token's user; PyEDB's "user" field stays informational.
    owner = current_user().user or (config.user if config.user != "unknown" else None)
    spec = JobSpec(name=config.jobid, kind="hfss", hfss=config, owner=owner,
                   priority=simfarm_priority(priority))
    if labels is not None:  # that AEDT release; the cores follow from the machine list
        spec = spec.model_copy(update={"resources": ResourceRequest(labels=labels)})
    try:
        job = _create(Admission(spec, owner=owner))
    except ApiError as exc:
        return pyedb_error(exc.status, exc.detail, _pyedb_fields(exc))
    except ValueError as exc:
        return pyedb_error(409, str(exc))
    log.info("job %s: submitted through the PyEDB API", job.id)
    return jsonify({"success": True, "job_id": job.id, "status": pyedb_status(job),
                    "message": f"Job {job.id} submitted successfully"}), 200


def _cancel(job_id: str) -> tuple[bool, Response | None]:
    job = _job_or_404(job_id)
    if isinstance(job, Response):
        return False, job
    try:
        services().jobs.request_cancel(job.id)
    except IllegalTransition:
        return False, None
    services().jobs.nudge_dispatcher()
    return True, None


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    """Cancel a queued or running job (a cluster job is cancelled on its cluster)."""
    ok, error = _cancel(job_id)
    if error is not None:
        return error
    return jsonify({"success": ok,
                    "message": f"Job {job_id} cancellation {'initiated' if ok else 'failed'}"})


@bp.post("/api/cancel/<job_id>")
def cancel_api(job_id: str) -> Response:
    """Handler-style cancel: ``{status, success}``."""
    ok, error = _cancel(job_id)
    if error is not None:
        return error
    return jsonify({"status": "cancelled" if ok else "failed", "success": ok})


@bp.post("/jobs/<job_id>/priority")
def set_priority(job_id: str) -> Response:
    """Change a queued job's priority: ``{"priority": 5}``."""
    job = _job_or_404(job_id)
    if isinstance(job, Response):
        return job
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or "priority" not in data:
        return pyedb_error(422, "send a JSON object with the new priority: {\"priority\": 5}",
                           [{"field": "priority", "reason": "required"}])
    raw = data["priority"]
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise TypeError(raw)
        priority = int(raw)
    except (TypeError, ValueError):
        return pyedb_error(422, "priority must be an integer",
                     [{"field": "priority", "reason": "must be an integer"}])
    try:
        services().jobs.set_priority(job.id, simfarm_priority(priority))
    except IllegalTransition as exc:
        return pyedb_error(409, f"only queued jobs can change priority ({exc})")
    services().jobs.nudge_dispatcher()
    return jsonify({"success": True, "message": f"Priority set to {priority}"})

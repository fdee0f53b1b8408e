"""REST routes for the farm's worker nodes, their local limits and drains, and for
changing a pending job's priority: ``/api/v1/workers``, ``/api/v1/workers/<node>/limits``,
``/api/v1/workers/<node>/drain`` and ``/resume``, and ``PATCH /api/v1/jobs/<id>``."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.limits import NodeLimits, NodeLimitsPatch
from simfarm.common.models import Job, NodeDrain, NodeInfo, Priority
from simfarm.gateway.auth import current_user, require_admin, require_visible
from simfarm.gateway.errors import ApiError
from simfarm.gateway.jobs_api import job_body
from simfarm.gateway.openapi import document
from simfarm.gateway.openapi.bodies import JobOut
from simfarm.gateway.parsing import check_job_id, json_body, parse_body
from simfarm.gateway.services import Services, services

log = logging.getLogger(__name__)
bp = Blueprint("workers", __name__, url_prefix="/api/v1")
_NODE = {"node": "the worker node's name"}


class WorkerOut(NodeInfo):
    """A registered node: capacity, what is free (by what its jobs reserve), its jobs,
    liveness, local limits and why it takes no new jobs, if it does not."""

    status: str = Field(description="`lost`, `drained` (an admin drained it and its last "
                        "job ended), `draining` (drained, jobs still running), `held` (a "
                        "local limit is hit), `full` or `ready`")


class WorkerListOut(BaseModel):
    """Every registered worker node."""

    workers: list[WorkerOut]


class DrainIn(BaseModel):
    """Why a node is drained (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200, description="shown with the node's status")


class PriorityPatch(BaseModel):
    """A change to a pending job."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority


def _with_allocations(svc: Services, nodes: list[NodeInfo]) -> list[dict[str, Any]]:
    jobs = {j.id: j for j in svc.jobs.get_many([j for n in nodes for j in n.jobs])}
    out = []
    for node in nodes:
        mine = [jobs[j] for j in node.jobs if j in jobs]
        cores = sum(j.spec.resources.cores for j in mine)
        memory = sum(j.spec.resources.memory_mb for j in mine)
        body = node.model_dump(mode="json")
        body["cores_free"] = max(0, node.cores_total - cores)
        body["memory_mb_free"] = max(0, min(node.memory_mb_free, node.memory_mb_total - memory))
        slots = min(node.max_jobs, node.limits.get("max_jobs") or node.max_jobs)
        if node.availability != "up":
            body["status"] = node.availability
        elif len(mine) >= slots:
            body["status"] = "full"
        else:
            body["status"] = "ready"
        out.append(body)
    return out


@bp.get("/workers")
@document(tags=["workers"], responses={200: WorkerListOut})
def list_workers() -> Response:
    """The registered worker nodes: capacity, free resources, jobs, limits and status."""
    svc = services()
    return jsonify({"workers": _with_allocations(svc, svc.nodes.all())})


def _worker(svc: Services, node: str) -> Response:
    found = svc.nodes.get(node)
    if found is None:
        raise ApiError(404, "not_found", f"no worker node named {node!r} is registered")
    return jsonify(_with_allocations(svc, [found])[0])


@bp.post("/workers/<node>/drain")
@document(tags=["workers"], path_params=_NODE, body=DrainIn, responses={200: WorkerOut},
          errors=(400, 403, 404, 422))
def drain_node(node: str) -> Response:
    """Drain a node (admins): it takes no new jobs from the next dispatch round on, the
    jobs it runs finish, then its status is ``drained``. Kept until resumed, across
    worker restarts; a node drained again keeps its first drain's time."""
    require_admin()
    svc = services()
    _known(svc, node)
    body = DrainIn.model_validate(json_body()) if request.content_length else DrainIn()
    current = svc.nodes.get(node)
    at = current.drain.at if current is not None and current.drain is not None else time.time()
    svc.nodes.set_drain(node, NodeDrain(by=current_user().user, at=at, reason=body.reason))
    log.info("node %s: drained by %s (%s)", node, current_user().user or "anonymous",
             body.reason or "no reason given")
    return _worker(svc, node)


@bp.post("/workers/<node>/resume")
@document(tags=["workers"], path_params=_NODE, responses={200: WorkerOut},
          errors=(403, 404))
def resume_node(node: str) -> Response:
    """Resume a drained node (admins): it takes jobs again from the next round on."""
    require_admin()
    svc = services()
    svc.nodes.set_drain(_known(svc, node), None)
    svc.jobs.nudge_dispatcher()
    log.info("node %s: resumed by %s", node, current_user().user or "anonymous")
    return _worker(svc, node)


def _known(svc: Services, node: str) -> str:
    if node not in svc.nodes.names():
        raise ApiError(404, "not_found", f"no worker node named {node!r} is registered")
    return node


@bp.get("/workers/<node>/limits")
@document(tags=["workers"], path_params=_NODE, responses={200: NodeLimits}, errors=(404,))
def get_limits(node: str) -> Response:
    """A node's local limits (``null``: no limit)."""
    svc = services()
    limits = svc.nodes.limits(_known(svc, node)) or NodeLimits()
    return jsonify(limits.model_dump(mode="json"))


@bp.put("/workers/<node>/limits")
@document(tags=["workers"], path_params=_NODE, body=NodeLimits,
          responses={200: NodeLimits}, errors=(400, 403, 404, 422))
def put_limits(node: str) -> Response:
    """Replace a node's local limits; fields left out mean no limit. The worker applies
    them at its next heartbeat; while one is hit the node takes no new jobs."""
    require_admin()
    svc = services()
    limits = parse_body(NodeLimits)
    return _store(svc, _known(svc, node), limits)


@bp.patch("/workers/<node>/limits")
@document(tags=["workers"], path_params=_NODE, body=NodeLimitsPatch,
          responses={200: NodeLimits}, errors=(400, 403, 404, 422))
def patch_limits(node: str) -> Response:
    """Change some of a node's local limits (``null`` removes one); returns them all."""
    require_admin()
    svc = services()
    patch = parse_body(NodeLimitsPatch)
    current = svc.nodes.limits(_known(svc, node)) or NodeLimits()
    changed = current.model_copy(update={k: getattr(patch, k) for k in patch.model_fields_set})
    return _store(svc, node, NodeLimits.model_validate(changed.model_dump()))


def _store(svc: Services, node: str, limits: NodeLimits) -> Response:
    svc.nodes.set_limits(node, limits)
    svc.jobs.nudge_dispatcher()
    return jsonify(limits.model_dump(mode="json"))


@bp.patch("/jobs/<job_id>")
@document(tags=["jobs"], path_params={"job_id": "the job's id"}, body=PriorityPatch,
          responses={200: JobOut}, errors=(400, 404, 409, 422))
def patch_job(job_id: str) -> Response:
    """Change a pending job's priority (409 once it has left ``pending``)."""
    svc = services()
    change = parse_body(PriorityPatch)
    require_visible(check_job_id(job_id))
    job: Job = svc.jobs.set_priority(job_id, change.priority)
    svc.jobs.nudge_dispatcher()
    return jsonify(job_body(job))

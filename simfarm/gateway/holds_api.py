"""Holding jobs back without cancelling them: ``POST /api/v1/jobs/{id}/hold`` and
``/release``, and the same for a whole sweep.

A held job is in the state ``held`` (``pending ⇄ held``, ``held → cancelled``): never
dispatched, it keeps its rank (priority, submission order, waiting time), so once
released it is back in line where it was. Users hold and release their own jobs and
sweeps, admins anyone's; a job an admin held is released by an admin only. Not to be
confused with a gate (dependencies, a sweep's throttle: :mod:`simfarm.common.store.gates`),
which a released job still passes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.errors import IllegalTransition
from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.common.store.gates import GATE_THROTTLE
from simfarm.common.sweeps import Sweep, throttle_reason
from simfarm.gateway.auth import can_see, current_user, require_visible
from simfarm.gateway.errors import ApiError
from simfarm.gateway.jobs_api import job_body
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.openapi.bodies import JobOut
from simfarm.gateway.parsing import check_job_id, json_body
from simfarm.gateway.services import Services, services

log = logging.getLogger(__name__)
bp = Blueprint("holds", __name__, url_prefix="/api/v1")
_JOB = {"job_id": "the job's id"}
_SWEEP = {"sweep_id": "the sweep's id"}


class HoldIn(BaseModel):
    """Why a job is held (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200, description="shown as the job's reason")


class SweepHoldOut(BaseModel):
    """What a sweep's hold or release changed."""

    sweep_id: str
    changed: int = Field(description="children held (or released) by this call")
    held: int = Field(description="children held now")


def _hold_fields(reason: str) -> dict[str, str | None]:
    caller = current_user()
    who = caller.user or "the local user"
    return {"reason": f"held by {who}" + (f": {reason}" if reason else ""),
            "held_by": caller.user or "", "held_admin": "1" if caller.admin else None}


def _reason() -> str:
    return HoldIn.model_validate(json_body()).reason if request.content_length else ""


def hold(svc: Services, job_ids: Sequence[str], reason: str) -> list[str]:
    """Hold the pending jobs among ``job_ids``; the ids held."""
    held = svc.jobs.transition_many(job_ids, JobState.HELD, sources=[JobState.PENDING],
                                    fields=_hold_fields(reason),
                                    event={"by": current_user().user, "reason": reason})
    if held:
        svc.jobs.nudge_dispatcher()
    return held


def release(svc: Services, jobs: Sequence[Job]) -> list[str]:
    """Release the held jobs among ``jobs`` (all visible to the caller; 403 for one an
    admin held, unless the caller is an admin); the ids released. A child of a throttled
    sweep goes back behind its sweep's throttle; a gated job's gate is looked at again."""
    caller = current_user()
    held = [j for j in jobs if j.state is JobState.HELD]
    if not caller.admin:
        for job in held:
            if svc.jobs.held_by_admin(job.id):
                raise ApiError(403, "forbidden", f"job {job.id} was held by an admin "
                               f"({job.held_by}): only an admin releases it")
    clear = {"reason": None, "held_by": None, "held_admin": None}
    throttles: dict[str, int | None] = {}
    plain: list[str] = []
    throttled: dict[int, list[str]] = {}
    for job in held:
        if job.sweep_id and not job.gate:
            if job.sweep_id not in throttles:
                throttles[job.sweep_id] = svc.sweeps.throttle(job.sweep_id)
            throttle = throttles[job.sweep_id]
            if throttle:
                throttled.setdefault(throttle, []).append(job.id)
                continue
        plain.append(job.id)
    event = {"by": caller.user}
    released = svc.jobs.transition_many(plain, JobState.PENDING, sources=[JobState.HELD],
                                        fields=clear, event=event)
    for throttle, ids in throttled.items():
        released += svc.jobs.transition_many(
            ids, JobState.PENDING, sources=[JobState.HELD], event=event,
            fields={**clear, "gate": GATE_THROTTLE, "reason": throttle_reason(throttle)})
    recheck = {j.id for j in held if j.gate} | {i for ids in throttled.values() for i in ids}
    svc.gates.request_check([i for i in released if i in recheck])
    if released:
        svc.jobs.nudge_dispatcher()
    return released


@bp.post("/jobs/<job_id>/hold")
@document(tags=["jobs"], path_params=_JOB, body=HoldIn,
          responses={200: Body(JobOut, "held (or already held)")}, errors=(400, 404, 409, 422))
def hold_job(job_id: str) -> Response:
    """Hold a pending job: it is never dispatched until released, and keeps its place
    in line and its priority. 409 once it has left ``pending``."""
    svc = services()
    require_visible(check_job_id(job_id))
    reason = _reason()
    if not hold(svc, [job_id], reason):
        job = svc.jobs.get(job_id)
        if job.state is not JobState.HELD:
            raise IllegalTransition(job_id, job.state.value, JobState.HELD.value)
    return jsonify(job_body(svc.jobs.get(job_id)))


@bp.post("/jobs/<job_id>/release")
@document(tags=["jobs"], path_params=_JOB,
          responses={200: Body(JobOut, "released (pending again)")},
          errors=(403, 404, 409))
def release_job(job_id: str) -> Response:
    """Release a held job: it is pending again, at the place in line it had. 409 when
    it is not held; 403 for a job an admin held (unless the caller is an admin)."""
    svc = services()
    require_visible(check_job_id(job_id))
    job = svc.jobs.get(job_id)
    if job.state is not JobState.HELD:
        raise IllegalTransition(job_id, job.state.value, JobState.PENDING.value)
    release(svc, [job])
    return jsonify(job_body(svc.jobs.get(job_id)))


def _sweep(svc: Services, sweep_id: str) -> Sweep:
    sweep = svc.sweeps.get(check_job_id(sweep_id), svc.jobs, children=False)
    if sweep is None or not can_see(sweep.owner):
        raise ApiError(404, "not_found", f"sweep {sweep_id} not found")
    return sweep


def _held_count(svc: Services, sweep_id: str) -> int:
    states = svc.jobs.states_of(svc.sweeps.child_ids(sweep_id))
    return sum(1 for s in states if s == JobState.HELD.value)


@bp.post("/sweeps/<sweep_id>/hold")
@document(tags=["sweeps"], path_params=_SWEEP, body=HoldIn, responses={200: SweepHoldOut},
          errors=(400, 404, 422))
def hold_sweep(sweep_id: str) -> Response:
    """Hold every pending child of a sweep (running ones carry on)."""
    svc = services()
    sweep = _sweep(svc, sweep_id)
    held = hold(svc, svc.sweeps.child_ids(sweep.id), _reason())
    log.info("sweep %s: %d children held", sweep.id, len(held))
    return jsonify({"sweep_id": sweep.id, "changed": len(held),
                    "held": _held_count(svc, sweep.id)})


@bp.post("/sweeps/<sweep_id>/release")
@document(tags=["sweeps"], path_params=_SWEEP, responses={200: SweepHoldOut},
          errors=(403, 404))
def release_sweep(sweep_id: str) -> Response:
    """Release every held child of a sweep (its throttle still applies)."""
    svc = services()
    sweep = _sweep(svc, sweep_id)
    ids = svc.sweeps.child_ids(sweep.id)
    states = svc.jobs.states_of(ids)
    held = svc.jobs.get_many([i for i, s in zip(ids, states, strict=True)
                              if s == JobState.HELD.value])
    released = release(svc, held)
    log.info("sweep %s: %d children released", sweep.id, len(released))
    return jsonify({"sweep_id": sweep.id, "changed": len(released),
                    "held": _held_count(svc, sweep.id)})

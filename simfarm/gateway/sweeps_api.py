"""REST routes for sweeps: ``/api/v1/sweeps`` and below."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from pydantic import ValidationError

from simfarm.common.models import JobSpec
from simfarm.common.store import new_job_id
from simfarm.common.store.gates import GATE_THROTTLE
from simfarm.common.sweeps import Sweep, SweepSpec, render_child, throttle_reason
from simfarm.gateway.admission import Admission, check_all, store_all
from simfarm.gateway.auth import can_see, owner_for_submit
from simfarm.gateway.dependencies import resolve_dependencies
from simfarm.gateway.errors import ApiError, field_error, validation_fields
from simfarm.gateway.files_bodies import SweepListOut
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.parsing import check_job_id, int_arg, parse_body
from simfarm.gateway.services import Services, services

bp = Blueprint("sweeps", __name__, url_prefix="/api/v1")
_SWEEP = {"sweep_id": "the sweep's id"}
_CURSOR = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")


def sweep_body(sweep: Sweep) -> dict[str, Any]:
    """A sweep as the API shows it, with links."""
    body = sweep.model_dump(mode="json")
    body["links"] = {"self": url_for("sweeps.get_sweep", sweep_id=sweep.id),
                     "cancel": url_for("sweeps.cancel_sweep", sweep_id=sweep.id)}
    return body


def _render_children(spec: SweepSpec) -> list[tuple[dict[str, Any], JobSpec]]:
    children: list[tuple[dict[str, Any], JobSpec]] = []
    for index, variation in enumerate(spec.expand()):
        try:
            children.append((dict(variation), render_child(spec.template, variation, index)))
        except ValidationError as exc:
            fields = [{"field": f"template.{f['field']}", "reason": f"{f['reason']} (child "
                       f"{index}: {variation})"} for f in validation_fields(exc)]
            raise ApiError(422, "validation_error", "; ".join(
                f"{f['field']}: {f['reason']}" for f in fields), fields) from None
        except ValueError as exc:
            raise field_error("template", f"{exc} (child {index})") from None
    return children


def _load(svc: Services, sweep_id: str) -> Sweep:
    sweep = svc.sweeps.get(check_job_id(sweep_id), svc.jobs)
    if sweep is None or not can_see(sweep.owner):
        raise ApiError(404, "not_found", f"sweep {sweep_id} not found")
    return sweep


@bp.post("/sweeps")
@document(tags=["sweeps"], body=SweepSpec, responses={201: Sweep}, errors=(400, 413, 415, 422, 429))
def submit_sweep() -> tuple[Response, int, dict[str, str]]:
    """Submit a sweep: one child job per variation (list or grid), with an optional
    throttle and dependencies (element-wise on other sweeps with ``elementwise``)."""
    svc = services()
    spec = parse_body(SweepSpec)
    children = _render_children(spec)
    owner = owner_for_submit(children[0][1].owner)
    shared_deps = None
    if spec.depends_on is not None and not spec.elementwise:
        shared_deps = resolve_dependencies(svc, spec.depends_on)
    sweep_id = new_job_id()
    jobs: list[Admission] = []
    for index, (variation, child) in enumerate(children):
        deps = shared_deps
        if spec.depends_on is not None and spec.elementwise:
            deps = resolve_dependencies(svc, spec.depends_on, element=index)
        extra: dict[str, Any] = {"sweep_id": sweep_id, "sweep_index": index,
                                 "variation": variation}
        if spec.throttle:
            extra["watched"] = "1"
            if index >= spec.throttle:
                extra.update(gate=GATE_THROTTLE, reason=throttle_reason(spec.throttle))
        jobs.append(Admission(child, owner=owner, where="template", extra=extra,
                              dependencies=deps))
    check_all(svc, jobs)  # each child as if submitted alone
    svc.sweeps.create(sweep_id, spec, len(children), owner)
    ids = store_all(svc, jobs)
    svc.sweeps.add_children(sweep_id, {job_id: i for i, job_id in enumerate(ids)})
    svc.gates.request_check([job_id for job_id, job in zip(ids, jobs, strict=True)
                             if "gate" in job.extra or any((job.dependencies or {}).values())])
    sweep = _load(svc, sweep_id)
    location = url_for("sweeps.get_sweep", sweep_id=sweep_id)
    return jsonify(sweep_body(sweep)), 201, {"Location": location}


@bp.get("/sweeps")
@document(tags=["sweeps"], responses={200: SweepListOut}, errors=(422,))
def list_sweeps() -> Response:
    """List sweeps, newest first, with their counts (``limit``, ``cursor``)."""
    svc = services()
    cursor = request.args.get("cursor") or None
    if cursor is not None and not _CURSOR.match(cursor):
        raise field_error("cursor", "must be the next_cursor of a previous page")
    ids, nxt = svc.sweeps.list_ids(float(cursor) if cursor else None,
                                   int_arg("limit", 50, 1, 500))
    # Another user's sweeps are left out of the page (pages may come out shorter).
    sweeps = [s for s in (svc.sweeps.get(i, svc.jobs, children=False) for i in ids)
              if s and can_see(s.owner)]
    return jsonify({"sweeps": [sweep_body(s) for s in sweeps], "next_cursor": nxt})


@bp.get("/sweeps/<sweep_id>")
@document(tags=["sweeps"], path_params=_SWEEP, responses={200: Sweep}, errors=(404,))
def get_sweep(sweep_id: str) -> Response:
    """One sweep: its state (derived from the children), counts per state and children
    (index, job id, variation, state, results)."""
    return jsonify(sweep_body(_load(services(), sweep_id)))


@bp.post("/sweeps/<sweep_id>/cancel")
@document(tags=["sweeps"], path_params=_SWEEP, responses={200: Body(Sweep, "cancelled")},
          errors=(404,))
def cancel_sweep(sweep_id: str) -> Response:
    """Cancel a sweep: every child not finished yet is cancelled (running ones are
    stopped by their workers)."""
    svc = services()
    sweep = _load(svc, sweep_id)
    svc.sweeps.mark_cancelled(sweep.id)
    svc.jobs.cancel_many([c.job_id for c in sweep.children if c.state not in
                          ("completed", "failed", "cancelled")], reason="sweep cancelled")
    svc.jobs.nudge_dispatcher()
    return jsonify(sweep_body(_load(svc, sweep.id)))

"""Audit: every request that changes something (submit, cancel, priority, limits,
uploads...) is appended to the audit log with who, from where and the outcome, by one
``after_request`` hook, so routes added later are audited without doing anything.
Admins read the log at ``GET /api/v1/audit``."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import BaseModel, Field

from simfarm.common.store.audit import AuditEntry
from simfarm.gateway.audit_writer import AuditWriter
from simfarm.gateway.auth import current_user, require_admin
from simfarm.gateway.errors import field_error
from simfarm.gateway.openapi import document
from simfarm.gateway.parsing import float_arg, int_arg, parsed_json
from simfarm.gateway.services import services

log = logging.getLogger(__name__)

bp = Blueprint("audit", __name__, url_prefix="/api/v1")
_WRITER = "simfarm.audit_writer"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: POST routes that only read (a body too large for a URL): not audited
READS = frozenset({"jobs.query_jobs"})
MAX_DETAIL_BYTES = 16 * 1024
_ACTIONS = {
    "jobs.submit_job": "submit",
    "jobs.cancel_job": "cancel",
    "history.resubmit": "resubmit",
    "sweeps.submit_sweep": "sweep.submit",
    "sweeps.cancel_sweep": "sweep.cancel",
    "files.put_blob": "upload",
    "files.attach_results": "results",
    "holds.hold_job": "hold",
    "holds.release_job": "release",
    "holds.hold_sweep": "sweep.hold",
    "holds.release_sweep": "sweep.release",
    "workers.drain_node": "drain",
    "workers.resume_node": "resume",
}
_KEYWORDS = ("resubmit", "priority", "limits", "limit", "cancel", "submit", "drain", "hold",
             "release", "resume")
_ID_ARGS = ("job_id", "sweep_id", "sha256", "name", "node")
_EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


def action_for(endpoint: str | None) -> str:
    """The audit action of an endpoint: a known name, else a keyword it contains."""
    if not endpoint:
        return "unknown"
    if endpoint in _ACTIONS:
        return _ACTIONS[endpoint]
    name = endpoint.lower()
    for word in _KEYWORDS:
        if word in name:
            return "limits" if word == "limit" else word
    return endpoint


def caller() -> tuple[str, bool]:
    """(user name, is admin) of the current request; ``anonymous`` in open mode."""
    try:
        principal = current_user()
    except AttributeError:  # rejected before authentication (401): nobody known
        return "anonymous", False
    return (principal.user or "anonymous"), principal.admin


def _scalars(data: Any) -> dict[str, Any]:
    """Top-level scalar fields of a JSON body (never env, argv or configs: they may hold
    secrets and are in the job itself)."""
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(v, str | int | float | bool) and k not in ("token", "password")}


def _target(response: Response) -> str | None:
    args = request.view_args or {}
    for name in _ID_ARGS:
        if args.get(name):
            return str(args[name])
    location = response.headers.get("Location")
    if location:  # a created job or sweep: no need to parse the body again
        return location.rstrip("/").rsplit("/", 1)[-1]
    if response.is_json and (response.content_length or 0) < 1_000_000:
        body = response.get_json(silent=True)
        if isinstance(body, dict):
            for key in ("id", "job_id"):
                if isinstance(body.get(key), str):
                    return str(body[key])
    return None


def record(response: Response) -> Response:
    """The ``after_request`` hook: append mutating requests to the audit log."""
    if (request.method not in MUTATING or request.endpoint in (None, "static")
            or request.endpoint in READS):
        return response
    try:
        details: dict[str, Any] = {}
        if request.is_json and (request.content_length or 0) <= MAX_DETAIL_BYTES:
            details = _scalars(parsed_json())
        who, _ = caller()
        writer(current_app).append({
            "who": who,
            "source": request.remote_addr or "",
            "action": action_for(request.endpoint),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "target": _target(response),
            "details": details or None,
        })
    except Exception:  # auditing must never break the request it describes
        log.exception("audit: could not record %s %s", request.method, request.path)
    return response


class AuditListOut(BaseModel):
    """Audit entries, newest first; pass ``next_before`` as ``before`` for more."""

    entries: list[AuditEntry]
    next_before: str | None = Field(default=None)


class AuditQuery(BaseModel):
    """Filters of ``GET /api/v1/audit``."""

    who: str | None = None
    action: str | None = Field(default=None, description="e.g. submit, cancel, priority")
    target: str | None = Field(default=None, description="job or sweep id")
    since: float | None = Field(default=None, description="seconds since the epoch")
    until: float | None = None
    before: str | None = Field(default=None, description="`next_before` of the previous page")
    limit: int = Field(default=100, ge=1, le=1000)


@bp.get("/audit")
@document(tags=["audit"], query=AuditQuery, responses={200: AuditListOut}, errors=(403, 422))
def list_audit() -> Response:
    """The audit log (admins only): who submitted, cancelled, changed priority or limits,
    uploaded, and from which address, newest first."""
    require_admin()
    before = request.args.get("before") or None
    if before is not None and not _EVENT_ID.match(before):
        raise field_error("before", "must be the next_before of a previous page")
    limit = int_arg("limit", 100, 1, 1000)
    since = float_arg("since", 0.0, 0.0, 1e11) or None
    until = float_arg("until", 0.0, 0.0, 1e11) or None
    writer(current_app).flush()  # entries of requests answered so far are readable
    entries = services().audit.query(
        who=request.args.get("who") or None, action=request.args.get("action") or None,
        target=request.args.get("target") or None, since=since, until=until, before=before,
        limit=limit)
    nxt = entries[-1].id if len(entries) == limit else None
    return jsonify({"entries": [e.model_dump(mode="json") for e in entries],
                    "next_before": nxt})


def writer(app: Flask) -> AuditWriter:
    """The app's audit writer."""
    found: AuditWriter = app.extensions[_WRITER]
    return found


def install_audit(app: Flask) -> None:
    """Register the audit route and hook."""
    app.extensions[_WRITER] = AuditWriter(app.extensions["simfarm"].audit)
    app.register_blueprint(bp)
    app.after_request(record)

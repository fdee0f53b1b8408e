"""PyEDB's ``PUT /pool/limits`` mapped onto the farm's per-node local limits.

PyEDB had one pool on one host; simfarm applies the change to every registered node, or
to the one named by ``?node=``. Field mapping (PyEDB → simfarm): ``max_concurrent_jobs``
→ ``max_jobs``, ``max_cpu_percent`` → ``max_cpu_percent``, ``min_memory_gb`` →
``min_free_memory_mb``, ``min_disk_gb`` → ``min_free_disk_mb``. Unlike PyEDB, the limits
are enforced by every node's heartbeat (CPU, memory and disk), not only concurrency.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simfarm.common.limits import NodeLimits
from simfarm.gateway.auth import current_user
from simfarm.gateway.errors import pyedb_error, validation_fields
from simfarm.gateway.openapi import document
from simfarm.gateway.pyedb_docs import PyedbError
from simfarm.gateway.services import services

log = logging.getLogger(__name__)

bp = Blueprint("pyedb_limits", __name__)
_MB_PER_GB = 1024


class PoolLimits(BaseModel):
    """PyEDB's ``ResourceLimits`` fields; only those given are changed."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=1024)
    max_cpu_percent: float | None = Field(default=None, gt=0, le=100)
    min_memory_gb: float | None = Field(default=None, ge=0)
    min_disk_gb: float | None = Field(default=None, ge=0)

    def as_node_changes(self) -> dict[str, Any]:
        """The given fields as changes to simfarm's :class:`NodeLimits`."""
        changes: dict[str, Any] = {}
        given = self.model_fields_set
        if "max_concurrent_jobs" in given:
            changes["max_jobs"] = self.max_concurrent_jobs
        if "max_cpu_percent" in given:
            changes["max_cpu_percent"] = self.max_cpu_percent
        if "min_memory_gb" in given and self.min_memory_gb is not None:
            changes["min_free_memory_mb"] = round(self.min_memory_gb * _MB_PER_GB)
        if "min_disk_gb" in given and self.min_disk_gb is not None:
            changes["min_free_disk_mb"] = round(self.min_disk_gb * _MB_PER_GB)
        return changes


class PoolLimitsResult(BaseModel):
    """PyEDB's answer, plus the nodes simfarm changed."""

    success: bool
    message: str
    limits: dict[str, Any]
    nodes: list[str]


class PoolLimitsQuery(BaseModel):
    """Query parameters of ``PUT /pool/limits``."""

    node: str | None = Field(default=None,
                             description="change only this node (default: every node)")


def _as_pyedb(limits: NodeLimits) -> dict[str, Any]:
    def gb(mb: int | None) -> float | None:
        return None if mb is None else mb / _MB_PER_GB

    return {
        "max_concurrent_jobs": limits.max_jobs,
        "max_cpu_percent": limits.max_cpu_percent,
        "min_memory_gb": gb(limits.min_free_memory_mb),
        "min_disk_gb": gb(limits.min_free_disk_mb),
    }


@bp.put("/pool/limits")
@document(tags=["pyedb"], body=PoolLimits, query=PoolLimitsQuery,
          responses={200: PoolLimitsResult, 400: PyedbError, 404: PyedbError,
                     403: PyedbError, 422: PyedbError})
def edit_pool_limits() -> Response:
    """Change the local limits of every node (PyEDB's pool limits; admins only)."""
    if not current_user().admin:
        return pyedb_error(403, "changing the pool limits needs an admin token")
    data = request.get_json(silent=True)
    if not data or not isinstance(data, dict):
        return pyedb_error(400, "No data provided")
    try:
        update = PoolLimits.model_validate(data)
    except ValidationError as exc:
        fields = validation_fields(exc)
        return pyedb_error(422, "; ".join(f"{f['field']}: {f['reason']}" for f in fields), fields)
    svc = services()
    names = svc.nodes.names()
    wanted = request.args.get("node")
    if wanted is not None:
        if wanted not in names:
            return pyedb_error(404, f"no worker node named {wanted!r} is registered")
        names = [wanted]
    if not names:
        return pyedb_error(404, "no worker node is registered yet")
    changes = update.as_node_changes()
    result = NodeLimits()
    for name in names:
        current = svc.nodes.limits(name) or NodeLimits()
        result = NodeLimits.model_validate({**current.model_dump(), **changes})
        svc.nodes.set_limits(name, result)
        log.info("node %s: limits changed through PUT /pool/limits: %s", name, changes)
    svc.jobs.nudge_dispatcher()
    return jsonify({"success": True, "message": "Concurrent job limits updated successfully",
                    "limits": _as_pyedb(result), "nodes": names})

"""Health and service information routes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from simfarm import __version__
from simfarm.common.store.server import write_refusal
from simfarm.gateway.auth import public
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.openapi.bodies import HealthOut
from simfarm.gateway.services import services

bp = Blueprint("health", __name__, url_prefix="/api/v1")


@bp.get("/health")
@public
@document(
    tags=["service"],
    responses={200: HealthOut, 503: Body(HealthOut, "Redis does not answer")},
)
def health() -> tuple[Response, int]:
    """200 when Redis answers (``degraded`` when it refuses writes: out of memory, cannot
    persist, a read-only replica), 503 otherwise; also counts live nodes and jobs."""
    svc = services()
    try:
        refusal = write_refusal(svc.redis)
    except Exception as exc:
        return jsonify({"status": "unavailable", "redis": str(exc), "version": __version__}), 503
    nodes = svc.nodes.all()
    return jsonify(
        {
            "status": "degraded" if refusal else "ok",
            "redis": refusal or "ok",
            "version": __version__,
            "nodes_alive": sum(1 for n in nodes if n.alive),
            "jobs": svc.jobs.counts(),
        }
    ), 200

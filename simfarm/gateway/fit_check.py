"""Submit-time check: a job that no registered node could ever run is a 422, not a job
stuck ``pending`` forever. With no node registered yet (a farm still starting), jobs are
accepted and wait with that reason."""

from __future__ import annotations

from simfarm.common.capacity import Capacity, Demand, never_fits_reason
from simfarm.common.models import JobSpec, NodeInfo
from simfarm.gateway.errors import ApiError
from simfarm.gateway.services import Services


def node_capacity(node: NodeInfo) -> Capacity:
    """A node's total capacity (limits such as ``max_jobs = 0`` are temporary: ignored)."""
    return Capacity(node.name, node.cores_total, node.memory_mb_total, node.disk_mb_total,
                    dict(node.labels), dict(node.licenses), max(1, node.max_jobs))


def check_fits_some_node(svc: Services, spec: JobSpec) -> None:
    """Raise a 422 naming the closest miss when no registered node (alive or not) could
    ever run ``spec``."""
    nodes = svc.nodes.all()
    if not nodes:
        return
    req = spec.resources
    demand = Demand(req.cores, req.memory_mb, req.disk_mb, dict(req.labels), dict(req.licenses))
    why = never_fits_reason(demand, [node_capacity(n) for n in nodes])
    if why is not None:
        raise ApiError(422, "unsatisfiable", why, [{"field": "resources", "reason": why}])

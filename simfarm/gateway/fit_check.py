"""Submit-time check: a job that no registered node could ever run is a 422, not a job
stuck ``pending`` forever. With no node registered yet (a farm still starting), jobs are
accepted and wait with that reason."""

from __future__ import annotations

import threading
import time

from simfarm.common.capacity import Capacity, Demand, never_fits_reason
from simfarm.common.models import JobSpec, NodeInfo
from simfarm.gateway.errors import ApiError
from simfarm.gateway.services import Services


def node_capacity(node: NodeInfo) -> Capacity:
    """A node's total capacity (limits such as ``max_jobs = 0`` are temporary: ignored)."""
    return Capacity(node.name, node.cores_total, node.memory_mb_total, node.disk_mb_total,
                    dict(node.labels), dict(node.licenses), max(1, node.max_jobs))


_cache: tuple[float, int, list[Capacity]] | None = None
_cache_lock = threading.Lock()
CACHE_S = 2.0  # node capacities change when nodes join or are reconfigured: rarely


def _capacities(svc: Services, fresh: bool = False) -> list[Capacity]:
    """Every registered node's capacity, read at most every :data:`CACHE_S` seconds (the
    registry is one Redis round trip plus a JSON parse per node: too much per submit)."""
    global _cache
    now = time.monotonic()
    with _cache_lock:
        cached = _cache
    if not fresh and cached is not None and cached[0] > now and cached[1] == id(svc):
        return cached[2]
    capacities = [node_capacity(n) for n in svc.nodes.all()]
    with _cache_lock:
        _cache = (now + CACHE_S, id(svc), capacities)
    return capacities


def check_fits_some_node(svc: Services, spec: JobSpec) -> None:
    """Raise a 422 naming the closest miss when no registered node (alive or not) could
    ever run ``spec``."""
    capacities = _capacities(svc)
    if not capacities:
        return
    req = spec.resources
    demand = Demand(req.cores, req.memory_mb, req.disk_mb, dict(req.labels), dict(req.licenses))
    why = never_fits_reason(demand, capacities)
    if why is not None:  # before refusing, look again: a node may have joined just now
        why = never_fits_reason(demand, _capacities(svc, fresh=True))
    if why is not None:
        raise ApiError(422, "unsatisfiable", why, [{"field": "resources", "reason": why}])

"""The fit rule at submit: could any registered node ever run this job?

A job that no registered node (alive or not) could ever run is refused (422
``unsatisfiable``) instead of waiting ``pending`` forever. With no node registered yet (a
farm still starting) every job is accepted and waits with that reason. An HFSS job whose
AEDT release or cluster scheduler no node has is refused in the user's terms ("no worker
node has AEDT 2025.2 installed ..."; PyEDB failed later with an IndexError).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection

from simfarm.common.capacity import Capacity, Demand, labels_match, never_fits_reason
from simfarm.common.hfss_jobs import hfss_missing_reason, hfss_routing_labels
from simfarm.common.license_pools import split_request
from simfarm.common.models import JobSpec, NodeInfo
from simfarm.common.store import NodeStore

CACHE_S = 2.0  # node capacities change when nodes join or are reconfigured: rarely


def node_capacity(node: NodeInfo) -> Capacity:
    """A node's total capacity (limits such as ``max_jobs = 0`` are temporary: ignored)."""
    return Capacity(node.name, node.cores_total, node.memory_mb_total, node.disk_mb_total,
                    dict(node.labels), dict(node.licenses), max(1, node.max_jobs))


class NodeCapacities:
    """Every registered node's capacity, read at most every :data:`CACHE_S` seconds (the
    registry is one Redis round trip plus a JSON parse per node: too much per submit)."""

    def __init__(self, nodes: NodeStore, cache_s: float = CACHE_S) -> None:
        self._nodes = nodes
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Capacity]] | None = None

    def read(self, fresh: bool = False) -> list[Capacity]:
        """The capacities, from the cache unless ``fresh`` or it is older than the limit."""
        now = time.monotonic()
        with self._lock:
            cached = self._cached
        if not fresh and cached is not None and cached[0] > now:
            return cached[1]
        capacities = [node_capacity(n) for n in self._nodes.all()]
        with self._lock:
            self._cached = (now + self._cache_s, capacities)
        return capacities


def demand_of(spec: JobSpec, pools: Collection[str] = ()) -> Demand:
    """What ``spec`` needs from the one node that runs it (licences of the farm's
    ``pools`` apart: they are counted farm-wide)."""
    req = spec.resources
    tokens, pool = split_request(req.licenses, pools)
    return Demand(req.cores, req.memory_mb, req.disk_mb, dict(req.labels), tokens, pool)


def never_runs(spec: JobSpec, capacities: list[Capacity],
               pools: Collection[str] = ()) -> tuple[str, str] | None:
    """``(field, reason)`` when none of ``capacities`` could ever run ``spec``, else None
    (also None with no node registered: the job waits for one)."""
    if not capacities:
        return None
    demand = demand_of(spec, pools)
    if spec.kind == "hfss":
        routing = Demand(labels=hfss_routing_labels(spec.resources.labels))
        if routing.labels and not any(labels_match(routing, c) for c in capacities):
            return "resources.labels", hfss_missing_reason(spec.resources.labels)
    why = never_fits_reason(demand, capacities)
    if why is None:
        return None
    if not any(labels_match(demand, c) for c in capacities):
        return "resources.labels", why
    return "resources", why


def refusal(capacities: NodeCapacities, spec: JobSpec,
            pools: Collection[str] = ()) -> tuple[str, str] | None:
    """:func:`never_runs` on the cached capacities, looked at again (fresh) before
    refusing: a node may have joined just now."""
    if never_runs(spec, capacities.read(), pools) is None:
        return None
    return never_runs(spec, capacities.read(fresh=True), pools)

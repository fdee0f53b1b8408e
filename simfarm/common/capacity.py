"""Static capacity checks: can a node ever run a job, whatever else it is doing?

Shared by the gateway (reject at submit with 422 when no registered node could ever fit)
and the dispatcher (hold a job ``pending`` with a visible reason). Pure functions over
plain dataclasses; no Redis, no Celery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Demand:
    """What one job needs from the single node that runs it (``licenses``: the node's
    tokens) and from the farm's licence pools (``pool``: floating licences, counted
    farm-wide, never against a node)."""

    cores: int = 1
    memory_mb: int = 0
    disk_mb: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    licenses: Mapping[str, int] = field(default_factory=dict)
    pool: Mapping[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """Short human-readable form, e.g. ``4 cores, 8192 MB, gpu=a100``."""
        parts = [f"{self.cores} core{'s' if self.cores != 1 else ''}"]
        if self.memory_mb:
            parts.append(f"{self.memory_mb} MB memory")
        if self.disk_mb:
            parts.append(f"{self.disk_mb} MB disk")
        parts += [f"{k}={v}" for k, v in sorted(self.labels.items())]
        parts += [f"{n} {k} licence(s)" for k, n in sorted(self.licenses.items())]
        parts += [f"{n} {k} licence(s)" for k, n in sorted(self.pool.items())]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a node has in total (not what is free right now)."""

    name: str
    cores: int
    memory_mb: int
    disk_mb: int
    labels: Mapping[str, str] = field(default_factory=dict)
    licenses: Mapping[str, int] = field(default_factory=dict)
    max_jobs: int = 1


def labels_match(demand: Demand, capacity: Capacity) -> bool:
    """Whether every label the job asks for is on the node with the same value."""
    labels = capacity.labels
    return all(labels.get(k) == v for k, v in demand.labels.items())


def shortfall(demand: Demand, capacity: Capacity) -> str | None:
    """Why ``capacity`` can never run ``demand`` (first reason found), or None if it can."""
    for key, value in sorted(demand.labels.items()):
        have = capacity.labels.get(key)
        if have != value:
            return f"label {key}={value}" + (f" (node has {key}={have})" if have else "")
    if capacity.max_jobs < 1:
        return "job slots (max_jobs is 0)"
    if demand.cores > capacity.cores:
        return f"{demand.cores} cores (node has {capacity.cores})"
    if demand.memory_mb > capacity.memory_mb:
        return f"{demand.memory_mb} MB memory (node has {capacity.memory_mb})"
    if demand.disk_mb > capacity.disk_mb:
        return f"{demand.disk_mb} MB disk (node has {capacity.disk_mb})"
    for name, count in sorted(demand.licenses.items()):
        tokens = capacity.licenses.get(name, 0)
        if count > tokens:
            return f"{count} {name} licence token(s) (node has {tokens})"
    return None


def never_fits_reason(demand: Demand, nodes: Iterable[Capacity]) -> str | None:
    """Why none of ``nodes`` could ever run ``demand``, or None if at least one could.

    The message names the closest miss so a user knows what to change, e.g.
    ``needs 128 cores; the largest node with matching labels has 64 (node-7)``.
    """
    nodes = list(nodes)
    if not nodes:
        return "no worker node is registered"
    matching = [n for n in nodes if labels_match(demand, n)]
    if not matching:
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(demand.labels.items()))
        return f"no registered node has the labels {wanted}"
    misses = []
    for node in matching:
        why = shortfall(demand, node)
        if why is None:
            return None
        misses.append((node, why))
    biggest = max(matching, key=lambda n: (n.cores, n.memory_mb, n.disk_mb, n.name))
    why = dict((n.name, w) for n, w in misses)[biggest.name]
    scope = "with matching labels " if demand.labels else ""
    return (
        f"no registered node {scope}can ever fit {demand.describe()}: "
        f"the largest, {biggest.name}, lacks {why}"
    )

"""The farm over time: which metrics simfarm records, how a bucket is aligned, and how
points are combined into coarser steps (docs/monitoring.md, "Farm over time").

One process (the dispatcher leader, :mod:`simfarm.workers.farm_sampler`) records a
sample per bucket (one minute by default); the store keeps a fixed number of buckets
per series and a coarser tier beyond (one hour), so the size depends on the number of
series (metrics x nodes x priorities), never on the number of jobs.

A series is named ``metric`` (the farm's total) or ``metric@label=value``
(``cores_busy@node=n1``, ``jobs_pending@priority=7``). A point ``(t, v)`` holds the
gauges as sampled at ``t`` and the counts of the bucket that ends at ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["gauge", "count", "percentile"]


@dataclass(frozen=True)
class Metric:
    """One recorded metric."""

    name: str
    kind: Kind
    unit: str
    label: str | None  # the label it is also recorded per ("node", "priority"), if any
    description: str

    @property
    def aggregate(self) -> str:
        """How points combine into a coarser step: gauges average, counts add up, and
        percentiles keep the highest bucket value (an upper bound)."""
        return {"gauge": "mean", "count": "sum", "percentile": "max"}[self.kind]


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("cores_busy", "gauge", "cores", "node", "cores requested by the jobs on live nodes"),
    Metric("cores_free", "gauge", "cores", "node", "cores of live nodes no job requests"),
    Metric("jobs_pending", "gauge", "jobs", "priority",
           "pending jobs (gated ones included, held ones not)"),
    Metric("jobs_running", "gauge", "jobs", "priority", "running jobs"),
    Metric("jobs_finished", "count", "jobs", None,
           "jobs that reached a final state (completed, failed, cancelled) in the bucket"),
    Metric("jobs_failed", "count", "jobs", None, "jobs that failed in the bucket"),
    Metric("wait_p50", "percentile", "seconds", None,
           "median time from submission to start of the jobs that started in the bucket"),
    Metric("wait_p95", "percentile", "seconds", None,
           "95th percentile of that waiting time"),
    Metric("licenses_in_use", "gauge", "licences", "feature",
           "licences of each floating pool held by farm jobs"),
    Metric("licenses_outside", "gauge", "licences", "feature",
           "licences of each floating pool in use outside the farm (per its server)"),
)}
LABELS = ("node", "priority", "feature")


def series_name(metric: str, label: str | None = None, value: str | None = None) -> str:
    """``metric`` or ``metric@label=value``."""
    return metric if label is None else f"{metric}@{label}={value}"


def parse_series_name(name: str) -> tuple[str, dict[str, str]]:
    """``cores_busy@node=n1`` -> ``("cores_busy", {"node": "n1"})``."""
    metric, _, rest = name.partition("@")
    if not rest:
        return metric, {}
    label, _, value = rest.partition("=")
    return metric, {label: value}


def bucket_end(ts: float, step: float) -> float:
    """The end of the bucket of length ``step`` that holds ``ts`` (buckets are aligned on
    multiples of ``step`` since the epoch; a point exactly on a boundary closes it)."""
    return math.ceil(ts / step) * step


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` (0-1) percentile by linear interpolation, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def combine(values: Sequence[float], aggregate: str) -> float:
    """Several points' values as one (``mean``, ``sum`` or ``max``)."""
    if aggregate == "sum":
        return float(sum(values))
    if aggregate == "max":
        return float(max(values))
    return float(sum(values) / len(values))


def resample(points: Iterable[tuple[float, float]], step: float,
             aggregate: str) -> list[tuple[float, float]]:
    """Points (ordered by time) combined into buckets of ``step`` seconds, each stamped
    with its bucket's end; the last bucket, which may still be filling, with the time of
    its latest point (never a time to come)."""
    out: list[tuple[float, float]] = []
    current: float | None = None
    latest = 0.0
    values: list[float] = []
    for ts, value in points:
        end = bucket_end(ts, step)
        if current is not None and end != current:
            out.append((current, combine(values, aggregate)))
            values = []
        current = end
        latest = ts
        values.append(value)
    if current is not None and values:
        out.append((min(current, latest), combine(values, aggregate)))
    return out

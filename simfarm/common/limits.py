"""Local limits of a worker node, as the PyEDB job manager has them.

While a limit is hit the node takes no new jobs and says why (``held_reason``). Limits
live in Redis so the API can change them while the farm runs; the worker reads them on
every heartbeat and the dispatcher honours ``max_jobs`` straight away.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class NodeLimits(BaseModel):
    """A node's local limits; ``null`` means no limit (or the worker's own setting)."""

    model_config = ConfigDict(extra="forbid")

    max_jobs: int | None = Field(
        default=None, ge=0, le=1024,
        description="most jobs at once (capped by the worker's concurrency); 0 holds the node",
    )
    max_cpu_percent: float | None = Field(
        default=None, gt=0, le=100, description="take no new job while CPU use is above this"
    )
    max_memory_percent: float | None = Field(
        default=None, gt=0, le=100, description="take no new job while memory use is above this"
    )
    min_free_disk_mb: int | None = Field(
        default=None, ge=0, description="take no new job while free scratch disk is below this"
    )
    min_free_memory_mb: int | None = Field(
        default=None, ge=0, description="take no new job while free memory is below this"
    )


class NodeLimitsPatch(NodeLimits):
    """A change to some limits: only the fields given are changed (``null`` clears one)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What a node measures about itself (psutil)."""

    cpu_percent: float
    memory_percent: float
    free_disk_mb: int
    free_memory_mb: int = 2**62


def held_reason(limits: NodeLimits, usage: Usage) -> str | None:
    """Why the node must take no new jobs now, or None when every limit is respected.

    ``max_jobs`` is enforced by the dispatcher as job slots; only ``max_jobs = 0`` holds
    the node outright."""
    reasons = []
    if limits.max_jobs == 0:
        reasons.append("max_jobs is 0")
    if limits.max_cpu_percent is not None and usage.cpu_percent > limits.max_cpu_percent:
        reasons.append(f"CPU {usage.cpu_percent:.0f}% > max {limits.max_cpu_percent:g}%")
    if limits.max_memory_percent is not None and usage.memory_percent > limits.max_memory_percent:
        reasons.append(
            f"memory {usage.memory_percent:.0f}% > max {limits.max_memory_percent:g}%"
        )
    if limits.min_free_disk_mb is not None and usage.free_disk_mb < limits.min_free_disk_mb:
        reasons.append(f"free disk {usage.free_disk_mb} MB < min {limits.min_free_disk_mb} MB")
    if limits.min_free_memory_mb is not None and usage.free_memory_mb < limits.min_free_memory_mb:
        reasons.append(
            f"free memory {usage.free_memory_mb} MB < min {limits.min_free_memory_mb} MB"
        )
    return "; ".join(reasons) if reasons else None

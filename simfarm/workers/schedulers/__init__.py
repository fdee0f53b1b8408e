"""Cluster backends: forward simfarm jobs to SLURM, LSF, PBS or Windows HPC."""

from __future__ import annotations

from simfarm.workers.schedulers.base import BackendConfig, ClusterBackend
from simfarm.workers.schedulers.options import ClusterOptions
from simfarm.workers.schedulers.poller import ClusterPoller, PollerSettings
from simfarm.workers.schedulers.registry import BACKENDS, create_backend
from simfarm.workers.schedulers.types import (
    ClusterJobRequest,
    ClusterState,
    ClusterStatus,
    Partition,
    SubmittedJob,
)

__all__ = [
    "BACKENDS",
    "BackendConfig",
    "ClusterBackend",
    "ClusterJobRequest",
    "ClusterOptions",
    "ClusterPoller",
    "ClusterState",
    "ClusterStatus",
    "Partition",
    "PollerSettings",
    "SubmittedJob",
    "create_backend",
]

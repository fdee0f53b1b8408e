"""A worker attached to a cluster: one backend and one status poller per worker process
(the worker's ``WorkerContext.cluster``) and the capacity the node advertises.

Enabled by ``SIMFARM_SCHEDULER`` (slurm, lsf, pbs, windows_hpc). The node then carries
the label ``scheduler=<type>`` and advertises the capacity of its partition (the
``queue`` of ``SIMFARM_SCHEDULER_OPTIONS``, else the cluster's default partition), so
the dispatcher can choose between lab machines and clusters.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from simfarm.common.models import NodeInfo
from simfarm.common.settings import Settings
from simfarm.workers.schedulers import (
    BackendConfig,
    ClusterBackend,
    ClusterPoller,
    Partition,
    PollerSettings,
    create_backend,
)
from simfarm.workers.schedulers.errors import SchedulerError
from simfarm.workers.schedulers.registry import backend_kind, scheduler_label

log = logging.getLogger(__name__)

CAPACITY_TTL_S = 30.0
SCHEDULER_LABEL = "scheduler"
#: the node label naming the cluster a scheduler worker forwards to (``<kind>:<name>``):
#: workers with the same value take over each other's cluster jobs
CLUSTER_LABEL = "scheduler.cluster"


@dataclass
class ClusterService:
    """The cluster side of one worker process."""

    settings: Settings
    backend: ClusterBackend
    poller: ClusterPoller
    _partition: Partition | None = None
    _problem: str | None = None
    _identity: str | None = None
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def label(self) -> str:
        return scheduler_label(self.kind)

    def identity(self) -> str:
        """Which cluster this is, ``<kind>:<name>``: the ``scheduler_cluster`` setting,
        else the name the cluster gives itself, else this node's name (then only this
        node follows its cluster jobs)."""
        if self._identity is not None:
            return self._identity
        name = self.settings.scheduler_cluster
        if name is None:
            try:
                name = self.backend.cluster_name()
            except SchedulerError as exc:  # asked again next time
                log.warning("node %s: cannot read the %s cluster's name: %s",
                            self.settings.node_name, self.kind, exc)
                return f"{self.kind}:{self.settings.node_name}"
        self._identity = f"{self.kind}:{name or self.settings.node_name}"
        return self._identity

    def partition(self) -> tuple[Partition | None, str | None]:
        """The advertised partition (cached) and, if the cluster cannot be read, why."""
        with self._lock:
            if time.monotonic() - self._checked < CAPACITY_TTL_S:
                return self._partition, self._problem
            self._checked = time.monotonic()
            try:
                partitions = self.backend.partitions()
            except SchedulerError as exc:
                log.warning("node %s: cannot read %s partitions: %s",
                            self.settings.node_name, self.kind, exc)
                self._problem = f"{self.kind} partitions unavailable: {exc}"
                return self._partition, self._problem
            wanted = self.settings.scheduler_options.get("queue")
            chosen = next((p for p in partitions if p.name == wanted), None) \
                or next((p for p in partitions if p.default), None) \
                or max(partitions, key=lambda p: p.cores_total, default=None)
            self._partition, self._problem = chosen, None
            if chosen is None:
                self._problem = f"{self.kind} reports no partitions"
            return self._partition, self._problem

    def describe(self, info: NodeInfo) -> NodeInfo:
        """``info`` with the cluster's capacity and the ``scheduler`` label."""
        partition, problem = self.partition()
        # AEDT found on this (login) host says nothing about the compute nodes: only
        # labels configured for the node are kept, so local HFSS jobs stay on lab machines.
        labels = {k: v for k, v in info.labels.items()
                  if not k.startswith("aedt") or k in self.settings.node_labels}
        labels[SCHEDULER_LABEL] = self.label
        labels[CLUSTER_LABEL] = self.identity()
        update: dict[str, object] = {"labels": labels,
                                     "max_jobs": self.settings.worker_concurrency}
        if partition is not None:
            labels["scheduler.partition"] = partition.name
            memory = partition.memory_mb * max(1, partition.nodes_total)
            update.update(cores_total=partition.cores_total, cores_free=partition.cores_free,
                          memory_mb_total=memory, memory_mb_free=memory)
        else:
            update.update(cores_total=0, cores_free=0, memory_mb_total=0, memory_mb_free=0)
        if problem is not None and partition is None:
            update["held_reason"] = problem
        return info.model_copy(update=update)

    def start(self) -> None:
        """Start following cluster jobs (the status poller's thread)."""
        self.poller.start()
        log.info("node %s: forwarding jobs to %s", self.settings.node_name, self.kind)

    def stop(self) -> None:
        self.poller.stop()


def build_service(settings: Settings) -> ClusterService:
    """A backend and its (not yet started) poller for ``settings.scheduler``."""
    assert settings.scheduler
    kind = backend_kind(settings.scheduler)
    backend = create_backend(kind, BackendConfig(bin_dir=settings.scheduler_bin_dir,
                                                 extra=dict(settings.scheduler_extra)))
    poller = ClusterPoller(backend, PollerSettings(
        min_interval_s=settings.scheduler_poll_s,
        max_interval_s=max(settings.scheduler_poll_s, settings.scheduler_poll_max_s),
        first_poll_delay_s=min(1.0, settings.scheduler_poll_s)))
    return ClusterService(settings, backend, poller)

"""Per-process worker context: settings, Redis connection, stores, node identity, and
the parts chosen when the worker starts (runners, cluster service, orphan guard).

Built once by the worker's entry point (:func:`simfarm.workers.main.build_context`) and
handed to every task and background thread: a worker has no other process-wide state.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from simfarm.common import redis_url
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from simfarm.workers.job_account import inherited_environment

if TYPE_CHECKING:
    from simfarm.workers.attempt import Runner
    from simfarm.workers.cluster_service import ClusterService
    from simfarm.workers.orphan_guard import OrphanGuard


def node_queue(node_name: str) -> str:
    """The Celery queue that feeds one node."""
    return f"simfarm.node.{node_name}"


@dataclass(frozen=True)
class RunnerTable:
    """The runner of each job kind on this worker, chosen when it starts
    (:func:`simfarm.workers.main.runner_table`). A runner that starts itself (a cluster
    runner) gets the attempt while the job is still ``scheduled`` and moves it to
    ``running`` when the job really starts."""

    runners: Mapping[str, Runner]
    self_starting: frozenset[str] = field(default_factory=frozenset)

    def runner_for(self, kind: str) -> Runner | None:
        return self.runners.get(kind)

    def starts_itself(self, kind: str) -> bool:
        return kind in self.self_starting


class ActiveAttempts:
    """The attempts this worker process is running now (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}

    def add(self, job_id: str, attempt: int) -> None:
        with self._lock:
            self._attempts[job_id] = attempt

    def discard(self, job_id: str) -> None:
        with self._lock:
            self._attempts.pop(job_id, None)

    def snapshot(self) -> dict[str, int]:
        """Job id -> attempt number of every attempt running now."""
        with self._lock:
            return dict(self._attempts)


@dataclass
class WorkerContext:
    """Everything a worker process shares between its tasks and background threads."""

    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    nodes: NodeStore
    runners: RunnerTable
    #: the cluster this worker forwards jobs to (None: it runs them itself)
    cluster: ClusterService | None = None
    #: kills this worker's job processes if the worker dies without stopping them
    orphans: OrphanGuard | None = None
    active: ActiveAttempts = field(default_factory=ActiveAttempts)
    shutting_down: threading.Event = field(default_factory=threading.Event)
    boot_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _inherited: dict[str, str] | None = field(default=None, repr=False)

    @classmethod
    def connected(cls, settings: Settings, runners: RunnerTable | None = None,
                  cluster: ClusterService | None = None) -> WorkerContext:
        """A context on a new Redis connection (:func:`connect`) with this worker's
        stores; ``runners`` None: a process that runs no job (the dispatcher's)."""
        connection = connect(settings)
        return cls(settings=settings, redis=connection,
                   jobs=JobStore.for_settings(connection, settings),
                   nodes=NodeStore(connection, settings.key_prefix),
                   runners=runners if runners is not None else RunnerTable({}),
                   cluster=cluster)

    def inherited_environment(self) -> dict[str, str]:
        """What every job inherits from this worker's environment (``job_env_inherit``),
        read once: a worker's own environment does not change while it runs."""
        if self._inherited is None:
            self._inherited = inherited_environment(self.settings)
        return self._inherited

    @property
    def node_name(self) -> str:
        return self.settings.node_name

    @property
    def queue(self) -> str:
        return node_queue(self.settings.node_name)


def redis_timeout_s(settings: Settings) -> float:
    """Socket timeout of a worker's Redis connection: short, so a call into a dead
    connection fails well within a job's lease and the runner can stop its job in time
    (self-fencing) instead of hanging in ``recv()``."""
    return max(3.0, 2 * settings.heartbeat_s + 1)


def lease_slack_s(settings: Settings) -> float:
    """How long past a running job's lease the dispatcher waits before handing it on:
    a cut-off runner notices the lease ran out at most one Redis timeout late, then
    gives the process ``kill_grace_s`` before SIGKILL; plus a margin for clock skew."""
    return redis_timeout_s(settings) + settings.kill_grace_s + 2.0


def connect(settings: Settings) -> redis.Redis:
    """A worker's Redis connection (short socket timeout, see :func:`redis_timeout_s`)."""
    return redis_url.connect(
        settings.require_redis_url(),
        health_check_interval=30,
        socket_timeout=redis_timeout_s(settings),
        socket_connect_timeout=3.0,
    )

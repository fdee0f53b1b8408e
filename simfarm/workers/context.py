"""Per-process worker context: settings, Redis connection, stores and node identity."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from functools import lru_cache

import redis

from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore


def node_queue(node_name: str) -> str:
    """The Celery queue that feeds one node."""
    return f"simfarm.node.{node_name}"


@dataclass
class WorkerContext:
    """Everything a worker process shares between its tasks and background threads."""

    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    nodes: NodeStore
    shutting_down: threading.Event = field(default_factory=threading.Event)
    boot_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

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


def build_context(settings: Settings) -> WorkerContext:
    """Connect to Redis and build the stores for these settings."""
    connection = redis.Redis.from_url(
        settings.require_redis_url(),
        health_check_interval=30,
        socket_timeout=redis_timeout_s(settings),
        socket_connect_timeout=3.0,
    )
    return WorkerContext(
        settings=settings,
        redis=connection,
        jobs=JobStore.for_settings(connection, settings),
        nodes=NodeStore(connection, settings.key_prefix),
    )


@lru_cache(maxsize=1)
def get_context() -> WorkerContext:
    """The context of this worker process, built on first use from the environment."""
    return build_context(Settings())

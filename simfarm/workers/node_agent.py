"""Describes this machine and keeps its registration alive with heartbeats."""

from __future__ import annotations

import logging
import platform
import socket
import threading

import psutil

from simfarm.common.aedt import node_aedt_labels
from simfarm.common.limits import NodeLimits, Usage, held_reason
from simfarm.common.models import NodeInfo
from simfarm.common.settings import redact_url
from simfarm.workers.context import WorkerContext
from simfarm.workers.gpu import gpu_labels

log = logging.getLogger(__name__)


def describe_node(ctx: WorkerContext) -> NodeInfo:
    """This node's identity, capacity and free resources, measured with psutil."""
    settings = ctx.settings
    memory = psutil.virtual_memory()
    disk_path = settings.state_dir if settings.state_dir.exists() else settings.state_dir.parent
    try:
        disk = psutil.disk_usage(str(disk_path))
        disk_total, disk_free = disk.total // 2**20, disk.free // 2**20
    except OSError:
        disk_total = disk_free = 0
    cores = settings.node_cores or psutil.cpu_count() or 1
    memory_total = settings.node_memory_mb or memory.total // 2**20
    labels = {
        "os": platform.system().lower(), **node_aedt_labels(), **gpu_labels(),
        **settings.node_labels,
    }
    limits = ctx.nodes.limits(settings.node_name) or NodeLimits()
    usage = Usage(
        cpu_percent=psutil.cpu_percent(interval=None),
        memory_percent=memory.percent,
        free_disk_mb=disk_free,
        free_memory_mb=memory.available // 2**20,
    )
    max_jobs = settings.worker_concurrency
    if limits.max_jobs is not None:
        max_jobs = min(max_jobs, limits.max_jobs)
    info = NodeInfo(
        name=settings.node_name,
        hostname=socket.gethostname(),
        queue=ctx.queue,
        os=platform.system().lower(),
        cores_total=cores,
        memory_mb_total=memory_total,
        disk_mb_total=disk_total,
        cores_free=cores,
        memory_mb_free=min(memory_total, memory.available // 2**20),
        disk_mb_free=disk_free,
        labels=labels,
        licenses=dict(settings.node_licenses),
        max_jobs=max_jobs,
        boot_id=ctx.boot_id,
        held_reason=held_reason(limits, usage),
        limits=limits.model_dump(),
    )
    if ctx.cluster is not None:  # a scheduler worker advertises its partition
        return ctx.cluster.describe(info)
    return info


def startup_summary(ctx: WorkerContext, info: NodeInfo) -> list[tuple[int, str]]:
    """What a worker says when it is ready, as ``(logging level, line)`` pairs: the node,
    its queue and size, what it is connected to; and a warning when it shares its host
    with another node and was not told its share (both would offer every core)."""
    settings = ctx.settings
    name = info.name
    labels = " ".join(f"{k}={v}" for k, v in sorted(info.labels.items())) or "-"
    redis_url = redact_url(settings.require_redis_url())
    lines = [
        (logging.INFO,
         f"node {name}: ready on host {info.hostname}, queue {info.queue}, "
         f"{settings.worker_concurrency} slot(s), {info.cores_total} cores, "
         f"{info.memory_mb_total} MiB memory; labels {labels}"),
        (logging.INFO,
         f"node {name}: Redis {redis_url} (broker and store, key prefix "
         f"{settings.key_prefix!r}); staged files through the gateway at "
         f"{settings.gateway_url_for_workers()}"),
    ]
    if settings.node_cores is None or settings.node_memory_mb is None:
        shared = sorted(n.name for n in ctx.nodes.all()
                        if n.alive and n.hostname == info.hostname and n.name != name)
        if shared:
            lines.append((logging.WARNING,
                          f"node {name}: shares host {info.hostname} with {', '.join(shared)}; "
                          "set SIMFARM_NODE_CORES and SIMFARM_NODE_MEMORY_MB on each so that "
                          "they do not both offer the whole machine"))
    return lines


class NodeAgent:
    """Background thread that sends this node's heartbeat every ``heartbeat_s``."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="simfarm-heartbeat", daemon=True)

    def start(self) -> None:
        settings = self.ctx.settings
        if self.ctx.nodes.limits(settings.node_name) is None:
            # first start: the configured limits become the node's; the API changes them
            self.ctx.nodes.set_limits(settings.node_name, NodeLimits(
                max_cpu_percent=settings.node_max_cpu_percent,
                max_memory_percent=settings.node_max_memory_percent,
                min_free_disk_mb=settings.node_min_free_disk_mb,
            ))
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        """Send one heartbeat now."""
        self.ctx.nodes.heartbeat(describe_node(self.ctx), self.ctx.settings.heartbeat_ttl_s)

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.ctx.settings.heartbeat_s):
            try:
                self.beat()
            except Exception as exc:
                # The first failure in full; then one line per beat (Redis may refuse
                # writes for hours, e.g. at maxmemory).
                if failing:
                    log.warning("node %s: heartbeat failed: %s", self.ctx.node_name, exc)
                else:
                    log.exception("node %s: heartbeat failed", self.ctx.node_name)
                failing = True
                continue
            if failing:
                log.info("node %s: heartbeat sent again", self.ctx.node_name)
            failing = False

    def stop(self) -> None:
        """Stop beating and mark the node as gone."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.ctx.nodes.remove(self.ctx.node_name)
        except Exception:
            log.exception("node %s: could not deregister", self.ctx.node_name)

"""Prometheus metrics of the farm, served by the gateway at ``/metrics``.

Gauges (jobs by state, queue depth per priority, node capacity, licence pools) are read
from Redis at scrape time, so any gateway shows the whole farm. The two histograms are
fed from the global event stream: each scrape reads the state events since the previous
scrape (starting at the first scrape) and observes

* ``simfarm_dispatch_latency_seconds``: time a job waited ``pending`` before it was
  ``scheduled`` on a node;
* ``simfarm_job_runtime_seconds{state}``: time from ``running`` to the final state.

WebSocket numbers come from the process's hub (:func:`simfarm.gateway.ws.ws_stats`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from simfarm.common.models import JobEvent
from simfarm.common.states import FINAL_STATES, JobState
from simfarm.gateway.licenses_api import pool_statuses
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.services import Services, services
from simfarm.gateway.ws import ws_stats

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
EXTENSION = "simfarm.metrics"
MAX_EVENTS_PER_SCRAPE = 100_000
_BATCH = 5_000
_REMEMBERED = 100_000
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
_RUNTIME_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600)
_MB = 1024 * 1024
_FINAL = frozenset(s.value for s in FINAL_STATES)


class FarmCollector(Collector):
    """Reads the farm's current state from Redis (and this process's WebSocket hub)
    on each scrape."""

    def __init__(self, app: Flask, svc: Services) -> None:
        self.app = app
        self.svc = svc

    def collect(self) -> Iterable[Metric]:
        jobs = self.svc.jobs
        by_state = GaugeMetricFamily("simfarm_jobs", "Jobs in each state", labels=["state"])
        for state, count in jobs.counts().items():
            by_state.add_metric([state], count)
        yield by_state
        depth = GaugeMetricFamily(
            "simfarm_queue_depth", "Pending jobs ready to dispatch, per priority",
            labels=["priority"],
        )
        gated = GaugeMetricFamily(
            "simfarm_queue_gated", "Pending jobs waiting at a gate (dependencies, a sweep's "
            "throttle) at each priority",
            labels=["priority"],
        )
        for family, counts in ((depth, jobs.pending_by_priority()),
                               (gated, jobs.pending_by_priority(gated=True))):
            for priority, count in counts.items():
                family.add_metric([str(priority)], count)
            yield family
        yield from self._nodes()
        yield from self._licenses()
        yield from self._websockets()

    def _licenses(self) -> Iterator[Metric]:
        if not self.svc.settings.licenses:
            return
        families = {
            "count": GaugeMetricFamily("simfarm_license_count", "Licences of the pool (its "
                                       "configured count)", labels=["pool"]),
            "limit": GaugeMetricFamily("simfarm_license_limit", "Licences of the pool farm "
                                       "jobs may hold at once now", labels=["pool"]),
            "held": GaugeMetricFamily("simfarm_license_held", "Licences of the pool held by "
                                      "farm jobs", labels=["pool"]),
            "outside": GaugeMetricFamily("simfarm_license_outside", "Licences of the pool in "
                                         "use outside the farm (last poll of its server)",
                                         labels=["pool"]),
            "free": GaugeMetricFamily("simfarm_license_free", "Licences of the pool farm jobs "
                                      "may still take", labels=["pool"]),
            "waiting": GaugeMetricFamily("simfarm_license_waiting", "Pending jobs that need "
                                         "the pool", labels=["pool"]),
            "fallback": GaugeMetricFamily(
                "simfarm_license_fallback", "1 while the pool's server gives no figures (its "
                "last good ones or the configured count are used)", labels=["pool"]),
        }
        for pool in pool_statuses(self.svc):
            values = {"count": pool.count, "limit": pool.limit, "held": pool.held,
                      "outside": pool.outside, "free": pool.free, "waiting": pool.waiting,
                      "fallback": 1 if pool.source in ("last-good", "fallback") else 0}
            for key, family in families.items():
                family.add_metric([pool.name], values[key])
        yield from families.values()

    def _websockets(self) -> Iterator[Metric]:
        stats = ws_stats(self.app)
        yield GaugeMetricFamily("simfarm_websocket_clients", "Open WebSocket connections",
                                value=stats["clients"])
        for key, text in (("connections_total", "WebSocket connections accepted"),
                          ("dropped_slow_total", "WebSocket clients dropped as too slow"),
                          ("events_total", "Events read from Redis for WebSocket clients")):
            name = f"simfarm_websocket_{key.removesuffix('_total')}"
            yield CounterMetricFamily(name, text, value=stats[key])

    def _nodes(self) -> Iterator[Metric]:
        nodes = self.svc.nodes.all()
        assigned = {j.id: j for j in self.svc.jobs.get_many([i for n in nodes for i in n.jobs])}
        families = {
            "up": GaugeMetricFamily("simfarm_node_up", "1 while the node's heartbeat is current",
                                    labels=["node"]),
            "cores": GaugeMetricFamily("simfarm_node_cores", "Cores the node offers",
                                       labels=["node"]),
            "cores_free": GaugeMetricFamily(
                "simfarm_node_cores_free", "Cores not requested by the node's jobs",
                labels=["node"]),
            "memory": GaugeMetricFamily("simfarm_node_memory_bytes", "Memory the node offers",
                                        labels=["node"]),
            "memory_free": GaugeMetricFamily(
                "simfarm_node_memory_free_bytes",
                "Memory neither requested by the node's jobs nor in use (as the node reports)",
                labels=["node"]),
            "jobs": GaugeMetricFamily("simfarm_node_jobs", "Jobs scheduled on or running at "
                                      "the node", labels=["node"]),
            "slots": GaugeMetricFamily("simfarm_node_slots", "Jobs the node runs at once",
                                       labels=["node"]),
            "draining": GaugeMetricFamily(
                "simfarm_node_draining", "1 while an admin drains the node (it takes no new "
                "jobs; drained once simfarm_node_jobs is 0)", labels=["node"]),
        }
        for node in nodes:
            mine = [assigned[i] for i in node.jobs if i in assigned]
            cores_used = sum(j.spec.resources.cores for j in mine)
            memory_used = sum(j.spec.resources.memory_mb for j in mine)
            memory_free = min(node.memory_mb_free, node.memory_mb_total - memory_used)
            values = {
                "up": 1 if node.alive else 0,
                "cores": node.cores_total,
                "cores_free": max(0, node.cores_total - cores_used),
                "memory": node.memory_mb_total * _MB,
                "memory_free": max(0, memory_free) * _MB,
                "jobs": len(node.jobs),
                "slots": node.max_jobs,
                "draining": 1 if node.drain is not None else 0,
            }
            for key, family in families.items():
                family.add_metric([node.name], values[key])
        yield from families.values()


class GatewayMetrics:
    """The gateway's metric registry and the state of its event-stream follower."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.dispatch_latency = Histogram(
            "simfarm_dispatch_latency_seconds",
            "Time a job waited pending before a node was chosen for it",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.job_runtime = Histogram(
            "simfarm_job_runtime_seconds",
            "Time from running to the final state",
            ["state"],
            buckets=_RUNTIME_BUCKETS,
            registry=self.registry,
        )
        self._collector: FarmCollector | None = None
        self._lock = threading.Lock()
        self._last_id: str | None = None
        self._pending_since: OrderedDict[str, float] = OrderedDict()
        self._running_since: OrderedDict[str, float] = OrderedDict()

    def render(self, app: Flask, svc: Services) -> bytes:
        """The Prometheus text exposition, after catching up on new events."""
        with self._lock:
            if self._collector is None:
                self._collector = FarmCollector(app, svc)
                self.registry.register(self._collector)
            self._follow_events(svc)
        return generate_latest(self.registry)

    def _follow_events(self, svc: Services) -> None:
        if self._last_id is None:
            self._last_id = svc.jobs.last_event_id()
            log.info("metrics: following job events from %s", self._last_id)
            return
        seen = 0
        while seen < MAX_EVENTS_PER_SCRAPE:
            events = svc.jobs.global_events(since=self._last_id, count=_BATCH)
            if not events:
                return
            self._observe(svc, [e for e in events if e.type == "state"])
            self._last_id = events[-1].id
            seen += len(events)
            if len(events) < _BATCH:
                return
        log.warning("metrics: more than %d new events since the last scrape; "
                    "the rest are counted at the next scrape", MAX_EVENTS_PER_SCRAPE)

    def _observe(self, svc: Services, events: list[JobEvent]) -> None:
        for event in events:
            target = event.data.get("to")
            if target == JobState.PENDING:
                _remember(self._pending_since, event.job_id, event.ts)
            elif target == JobState.SCHEDULED:
                since = self._pending_since.pop(event.job_id, None)
                if since is None:
                    since = svc.jobs.times(event.job_id).created_at
                if since is not None:
                    self.dispatch_latency.observe(max(0.0, event.ts - since))
            elif target == JobState.RUNNING:
                _remember(self._running_since, event.job_id, event.ts)
            elif target in _FINAL:
                self._pending_since.pop(event.job_id, None)
                started = self._running_since.pop(event.job_id, None)
                if started is None and event.data.get("from") == JobState.RUNNING:
                    started = svc.jobs.times(event.job_id).started_at
                if started is not None:
                    self.job_runtime.labels(state=target).observe(max(0.0, event.ts - started))


def _remember(memory: OrderedDict[str, float], job_id: str, ts: float) -> None:
    memory[job_id] = ts
    memory.move_to_end(job_id)
    while len(memory) > _REMEMBERED:
        memory.popitem(last=False)


def gateway_metrics() -> GatewayMetrics:
    """The metrics of the current app."""
    metrics = current_app.extensions.get(EXTENSION)
    if metrics is None:
        metrics = current_app.extensions.setdefault(EXTENSION, GatewayMetrics())
    assert isinstance(metrics, GatewayMetrics)
    return metrics


@bp.get("/metrics")
@document(
    tags=["service"],
    responses={200: Body(None, "Prometheus text format", media_type="text/plain")},
)
def metrics() -> Response:
    """Prometheus metrics: jobs by state, queue depth per priority, dispatch latency, job
    runtime, node capacity and free cores/memory, WebSocket clients."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    body = gateway_metrics().render(app, services())
    return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})

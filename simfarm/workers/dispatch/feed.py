"""Keeps the placement policy in step with the farm as Redis records it.

Each dispatch round reads the live nodes (with their jobs and limits) and the pending
queue's ids and scores, and tells the :class:`~simfarm.workers.dispatch.Scheduler` only
what changed, so a round costs about what changed, not the size of the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from simfarm.common.capacity import Capacity, Demand
from simfarm.common.license_pools import split_request
from simfarm.common.models import Job, NodeInfo, ResourceRequest
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.workers.dispatch.config import PolicyConfig
from simfarm.workers.dispatch.data import NodeView, PendingJob, Placement, RunningJob
from simfarm.workers.dispatch.policy import Scheduler

log = logging.getLogger(__name__)

#: how many pending jobs (in queue order) the dispatcher looks at per round
SCAN_DEPTH = 5000


def demand_of(request: ResourceRequest, pools: Collection[str] = ()) -> Demand:
    """The policy's view of a job's resource request: the licences of the farm's
    ``pools`` apart from the node's tokens."""
    tokens, pool = split_request(request.licenses, pools)
    return Demand(request.cores, request.memory_mb, request.disk_mb,
                  dict(request.labels), tokens, pool)


def capacity_of(node: NodeInfo) -> Capacity:
    """A node's total capacity, with its ``max_jobs`` limit applied."""
    max_jobs = node.max_jobs
    limit = node.limits.get("max_jobs") if node.limits else None
    if isinstance(limit, int):
        max_jobs = min(max_jobs, limit)
    return Capacity(node.name, node.cores_total, node.memory_mb_total, node.disk_mb_total,
                    dict(node.labels), dict(node.licenses), max_jobs)


def node_view(node: NodeInfo) -> NodeView:
    """How the policy sees a live node (a drained one is held: it takes no new jobs)."""
    return NodeView(capacity_of(node), node.closed_reason)


class SchedulerFeed:
    """A :class:`Scheduler` plus what it was last told, to send it only differences."""

    def __init__(self, jobs: JobStore, nodes: NodeStore, config: PolicyConfig,
                 pools: Collection[str] = ()) -> None:
        self.jobs = jobs
        self.nodes = nodes
        self.pools = frozenset(pools)
        self.scheduler = Scheduler(config)
        self._views: dict[str, NodeView] = {}
        self._running: dict[str, str] = {}
        self._pending: dict[str, int] = {}
        self._reasons: dict[str, str] = {}
        self.live: dict[str, NodeInfo] = {}

    def refresh(self, now: float) -> None:
        """Bring the policy's picture up to date with Redis."""
        infos = self.nodes.all()
        self.live = {n.name: n for n in infos if n.alive}
        self._sync_nodes()
        self._sync_running(now)
        self._sync_pending()

    def _sync_nodes(self) -> None:
        sched = self.scheduler
        for name in [n for n in self._views if n not in self.live]:
            for job_id in sched.remove_node(name):
                self._running.pop(job_id, None)
            del self._views[name]
            log.info("node %s: gone from the dispatcher's view", name)
        for name, info in self.live.items():
            view = node_view(info)
            if self._views.get(name) != view:
                sched.upsert_node(view)
                self._views[name] = view

    def _sync_running(self, now: float) -> None:
        sched = self.scheduler
        current = {job_id: n.name for n in self.live.values() for job_id in n.jobs}
        for job_id, node in list(self._running.items()):
            if current.get(job_id) != node:
                sched.finish(job_id)
                del self._running[job_id]
        new = [j for j in current if j not in self._running]
        for job in self.jobs.get_many(new) if new else []:
            node = current[job.id]
            if job.state not in (JobState.SCHEDULED, JobState.RUNNING):
                continue
            started = job.started_at or job.scheduled_at
            sched.add_running(RunningJob(
                job.id, node, demand_of(job.spec.resources, self.pools),
                started.timestamp() if started else now, job.spec.timeout_s,
            ))
            self._pending.pop(job.id, None)
            self._running[job.id] = node

    def _sync_pending(self) -> None:
        sched = self.scheduler
        seen: set[str] = set()
        new: dict[str, int] = {}
        for job_id, priority, seq in self.jobs.pending_entries(SCAN_DEPTH):
            seen.add(job_id)
            known = self._pending.get(job_id)
            if known is None:
                if job_id not in self._running:
                    new[job_id] = seq
            elif known != priority:
                sched.set_priority(job_id, priority)
                self._pending[job_id] = priority
        for job_id in [j for j in self._pending if j not in seen]:
            sched.withdraw(job_id)
            del self._pending[job_id]
            self._reasons.pop(job_id, None)
        for job in self.jobs.get_many(list(new)) if new else []:
            if job.state is JobState.PENDING:
                sched.submit(pending_job(job, new[job.id], self.pools))
                self._pending[job.id] = job.priority

    def placed(self, placement: Placement) -> None:
        """The dispatcher marked this job scheduled on the node."""
        self._pending.pop(placement.job_id, None)
        self._reasons.pop(placement.job_id, None)
        self._running[placement.job_id] = placement.node

    def not_placed(self, placement: Placement) -> None:
        """The job could not be scheduled after all: forget it until it is seen again."""
        self.scheduler.unplace(placement.job_id)
        self._pending.pop(placement.job_id, None)
        self._reasons.pop(placement.job_id, None)

    def changed_reasons(self, limit: int = 2000) -> dict[str, str]:
        """Why-pending messages that differ from the last ones written (first ``limit``)."""
        out: dict[str, str] = {}
        for job_id in list(self._pending)[:limit]:
            reason = self.scheduler.why_pending(job_id)
            if reason is not None and self._reasons.get(job_id) != reason.message:
                out[job_id] = reason.message
        return out

    def reasons_written(self, reasons: dict[str, str]) -> None:
        """Remember what was written so the same message is not written again."""
        self._reasons.update(reasons)


def pending_job(job: Job, seq: int, pools: Collection[str] = ()) -> PendingJob:
    """The policy's view of a pending job."""
    return PendingJob(job.id, job.priority, seq, demand_of(job.spec.resources, pools),
                      job.spec.timeout_s, job.created_at.timestamp())

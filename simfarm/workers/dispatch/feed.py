"""Keeps the placement policy in step with the farm as Redis records it, by changes.

When a dispatcher starts leading it loads the farm once: the live nodes with the jobs
they hold, and every startable pending job. From then on a round reads only what
changed, from the global event stream (jobs created, released from a hold, cancelled,
re-prioritised, gated or ungated, held or resumed, scheduled elsewhere, finished,
handed back to the queue) and loads
just the jobs those events name; the nodes (capacity, holds, liveness, the jobs they
hold) are re-read when their version says one changed (a join, a clean leave, a new
hold or limit: one ``GET`` per round) and on a short timer (a node that dies silently),
which also reconciles the running jobs with what the events said. So a round costs
about what changed plus what was placed, never the size of the queue. If the event
stream was trimmed past the feed's position (the dispatcher stalled for a long time),
the feed loads everything again.

Why jobs wait is written as one note per request shape, only for shapes whose note
changed (:meth:`SchedulerFeed.write_waits`); readers render it per job
(:mod:`simfarm.common.waiting`).

A new kind of input (a rank factor such as fair share, or licence pools) is a new
event to apply in :meth:`SchedulerFeed._apply` and a field of :class:`PendingJob` or
:class:`NodeView`; the policy keeps the rest incremental.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable

from simfarm.common.capacity import Capacity, Demand
from simfarm.common.license_pools import split_request
from simfarm.common.models import NodeInfo, ResourceRequest
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.dispatch import Change, DispatchStore, JobBrief, JobToPlace
from simfarm.common.store.fairshare import FairShareStore
from simfarm.common.waiting import ShapeWait
from simfarm.workers.dispatch.config import PolicyConfig
from simfarm.workers.dispatch.data import NodeView, PendingJob, Placement, RunningJob
from simfarm.workers.dispatch.policy import Scheduler

log = logging.getLogger(__name__)

#: events read per round at most (the rest next round)
EVENT_BATCH = 10_000
#: pending jobs read per request while loading the queue
LOAD_PAGE = 1000
#: the fair-share usage is stored at most this often (seconds)
USAGE_EVERY_S = 1.0
_FINAL = frozenset({JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value})
_ACTIVE = frozenset({JobState.SCHEDULED.value, JobState.RUNNING.value})


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


def pending_job(job: JobBrief, pools: Collection[str] = ()) -> PendingJob:
    """The policy's view of a pending job."""
    return PendingJob(job.id, job.priority, job.seq, demand_of(job.resources, pools),
                      job.timeout_s, job.created_at, job.account, job.owner)


def event_time(event_id: str) -> float:
    """When an event of the stream was written (its id is ``<ms>-<n>``)."""
    return int(event_id.split("-", 1)[0]) / 1000.0


class SchedulerFeed:
    """A :class:`Scheduler` plus the position in the event stream it has seen up to.

    Nodes are re-read every ``node_every_s`` at least (to notice one that died without
    a word), and the feed checks every ``trim_every_s`` that no event it had not read yet
    was trimmed from the capped stream.
    """

    def __init__(self, jobs: JobStore, nodes: NodeStore, config: PolicyConfig,
                 pools: Collection[str] = (), node_every_s: float = 0.5,
                 trim_every_s: float = 1.0) -> None:
        self.jobs = jobs
        self.nodes = nodes
        self.pools = frozenset(pools)
        self.queue = DispatchStore(jobs.connection, jobs.keys.prefix)
        self.usage = FairShareStore(jobs.connection, jobs.keys.prefix)
        self._next_usage = 0.0
        self._idle_saved = False
        self.scheduler = Scheduler(config)
        self.node_every_s = node_every_s
        self.trim_every_s = trim_every_s
        self.live: dict[str, NodeInfo] = {}
        self._views: dict[str, NodeView] = {}
        self._running: dict[str, str] = {}
        self._since: str | None = None
        self._next_nodes = 0.0
        self._nodes_version = -1
        self._next_trim_check = 0.0
        #: the notes last written, by shape name
        self._notes: dict[str, ShapeWait] = {}
        self._fresh_notes = True
        #: per round, for the benchmarks and the log: events applied, jobs loaded
        self.last_round = (0, 0)
        #: what placing each pending job the policy holds needs, from the read that queued
        #: it (placing it reads nothing more; the placing transition is fenced by the
        #: attempt it names, so an entry gone stale is refused, not misused)
        self.placing: dict[str, JobToPlace] = {}

    # ------------------------------------------------------------------ reading
    def refresh(self, now: float) -> None:
        """Bring the policy's picture up to date with Redis."""
        if self._since is None:
            self._load(now)
            return
        events, version = self.queue.changes(self._since, EVENT_BATCH)
        if events:
            self._since = events[-1].id
        loaded = self._apply(events)
        self.last_round = (len(events), loaded)
        clock = time.monotonic()
        if clock >= self._next_trim_check:
            self._next_trim_check = clock + self.trim_every_s
            if self.jobs.trimmed_after(self._since) is not None:
                log.warning("dispatcher: events were trimmed before it read them; "
                            "loading the queue again")
                self.save_usage(force=True)
                self.scheduler = Scheduler(self.scheduler.config)
                self._views, self._running, self._since = {}, {}, None
                self.placing = {}
                self._notes, self._fresh_notes = {}, True
                self._load(now)
                return
        if version != self._nodes_version or clock >= self._next_nodes:
            self._nodes_version = version
            self._sync_nodes(now)

    def _load(self, now: float) -> None:
        """Everything once: nodes, the jobs they hold, every startable pending job. Events
        from the moment before are applied next round (applying them twice is harmless)."""
        started = time.monotonic()
        self._next_trim_check = started + self.trim_every_s
        self._since = self.jobs.last_event_id()
        self._nodes_version = self.nodes.version()
        at, usage = self.usage.load()
        if at is not None:  # go on from the last leader's count
            self.scheduler.shares.load(at, usage)
        self._sync_nodes(now)
        after: int | None = None
        count = 0
        while True:
            entries = self.queue.pending_entries(after, LOAD_PAGE)
            if not entries:
                break
            after = entries[-1][3]
            ids = [e[0] for e in entries if e[0] not in self._running]
            for job in self.queue.briefs(ids):
                if job.startable:
                    self._queue(job)
                    count += 1
        log.info("dispatcher: loaded %d pending jobs and %d nodes in %.2f s", count,
                 len(self.live), time.monotonic() - started)

    def _apply(self, events: Iterable[Change]) -> int:
        """Apply what the events say; returns how many jobs were read to do so."""
        sched = self.scheduler
        load: dict[str, None] = {}
        for event in events:
            job_id, data = event.job_id, event.data
            if event.type == "state":
                to, source = data.get("to"), data.get("from")
                if to == JobState.PENDING.value:
                    if job_id in self._running:  # handed back to the queue
                        self._finish(job_id, event_time(event.id))
                    load[job_id] = None
                elif source == JobState.PENDING.value:
                    load.pop(job_id, None)
                    self._withdraw(job_id)
                if to in _FINAL and job_id in self._running:
                    self._finish(job_id, event_time(event.id))
            elif event.type == "info":
                message = data.get("message")
                if message == "ungated":
                    load[job_id] = None
                elif message == "gated":
                    load.pop(job_id, None)
                    self._withdraw(job_id)
                elif message == "priority changed" and isinstance(data.get("new"), int):
                    sched.set_priority(job_id, data["new"])
        wanted = [j for j in load if not sched.is_pending(j) and j not in self._running]
        for job in self.queue.briefs(wanted) if wanted else []:
            if job.startable:
                self._queue(job)
        return len(wanted)

    def _queue(self, job: JobBrief) -> None:
        """Hand a startable pending job to the policy, and keep what placing it needs."""
        self.scheduler.submit(pending_job(job, self.pools))
        self.placing[job.id] = job.to_place()

    def _withdraw(self, job_id: str) -> None:
        self.scheduler.withdraw(job_id)
        self.placing.pop(job_id, None)

    def _finish(self, job_id: str, at: float | None = None) -> None:
        self.scheduler.finish(job_id, at)
        self._running.pop(job_id, None)

    def _sync_nodes(self, now: float) -> None:
        """Nodes (capacity, holds, liveness) and the jobs they hold, as Redis has them."""
        self._next_nodes = time.monotonic() + self.node_every_s
        infos = self.nodes.all()
        self.live = {n.name: n for n in infos if n.alive}
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
        current = {job_id: n.name for n in self.live.values() for job_id in n.jobs}
        for job_id, node in list(self._running.items()):
            if current.get(job_id) != node:
                self._finish(job_id)
        new = [j for j in current if j not in self._running]
        for job in self.queue.briefs(new) if new else []:
            if job.state not in _ACTIVE:
                continue
            node = current[job.id]
            sched.add_running(RunningJob(job.id, node, demand_of(job.resources, self.pools),
                                         job.started_at or now, job.timeout_s, job.account,
                                         job.owner))
            self._running[job.id] = node
            self.placing.pop(job.id, None)  # add_running took it out of the queue

    def nodes_changed(self) -> None:
        """Re-read the nodes next round (the caller saw one die)."""
        self._next_nodes = 0.0

    # ------------------------------------------------------------------ decisions
    def placed(self, placement: Placement) -> None:
        """The dispatcher marked this job scheduled on the node."""
        self._running[placement.job_id] = placement.node
        self.placing.pop(placement.job_id, None)

    def not_placed(self, placement: Placement) -> None:
        """The job could not be scheduled after all: it is read again and, if it is still
        startable, queued again (if it left the queue, an event says so next round)."""
        self.scheduler.unplace(placement.job_id)
        self.placing.pop(placement.job_id, None)
        for job in self.queue.briefs([placement.job_id]):
            if job.startable:
                self._queue(job)

    def save_usage(self, force: bool = False) -> bool:
        """Store the fair-share usage (at most every ``USAGE_EVERY_S``, or now with
        ``force``); True if it was written. A new leader goes on from it: what jobs that
        ended in between used since the last write is lost (a second's worth at most)."""
        clock = time.monotonic()
        shares = self.scheduler.shares
        if shares.clock is None or (not force and clock < self._next_usage):
            return False
        busy = shares.busy()
        if not busy and self._idle_saved and not force:
            return False  # nothing accrues: the stored value decays as it is
        self._next_usage = clock + USAGE_EVERY_S
        self._idle_saved = not busy
        self.usage.save(shares.clock, shares.usage())
        return True

    def write_waits(self) -> int:
        """Store why jobs wait, for the request shapes whose note changed; returns how many
        notes were written or removed. The first write of a term replaces every note."""
        notes = self.scheduler.shape_waits()
        changed = {n: w for n, w in notes.items() if self._notes.get(n) != w}
        if changed or self._fresh_notes:
            self.queue.write_waits(changed, replace=self._fresh_notes)
            self._fresh_notes = False
        for name, note in changed.items():
            if note is None:
                self._notes.pop(name, None)
            else:
                self._notes[name] = note
        return len(changed)

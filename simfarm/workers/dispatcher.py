"""The dispatcher: moves pending jobs onto nodes with room, and requeues jobs of lost nodes.

One dispatcher is active at a time (see :mod:`simfarm.workers.leader`). It sends a Celery
task only when a node has room, so Celery never holds a backlog: priorities live in
simfarm's sorted sets, not in broker queues.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simfarm.common.errors import IllegalTransition, JobNotFound, StaleAttempt
from simfarm.common.models import Job, NodeInfo
from simfarm.common.states import JobState
from simfarm.workers.context import WorkerContext
from simfarm.workers.holds import HoldReleaser
from simfarm.workers.leader import LeaderLock

log = logging.getLogger(__name__)

SendTask = Callable[[NodeInfo, Job, int], None]
SCAN_DEPTH = 200
SCHEDULED_LEASE_S = 60.0
LEASE_SLACK_S = 10.0


@dataclass
class NodeRoom:
    """What is still free on a node during one dispatch round."""

    node: NodeInfo
    cores: int
    memory_mb: int
    slots: int
    licenses: dict[str, int] = field(default_factory=dict)

    def fits(self, job: Job) -> bool:
        need = job.spec.resources
        if self.slots < 1 or need.cores > self.cores or need.memory_mb > self.memory_mb:
            return False
        if any(self.node.labels.get(k) != v for k, v in need.labels.items()):
            return False
        return all(self.licenses.get(k, 0) >= n for k, n in need.licenses.items())

    def take(self, job: Job) -> None:
        need = job.spec.resources
        self.slots -= 1
        self.cores -= need.cores
        self.memory_mb -= need.memory_mb
        for name, count in need.licenses.items():
            self.licenses[name] = self.licenses.get(name, 0) - count


class Dispatcher:
    """Places pending jobs in priority order on nodes whose free resources fit them."""

    def __init__(self, ctx: WorkerContext, send: SendTask) -> None:
        self.ctx = ctx
        self.send = send
        self.lock = LeaderLock(
            ctx.redis, ctx.jobs.keys, ttl_s=max(3.0, ctx.settings.heartbeat_ttl_s)
        )
        # Eligibility hook: held jobs (dependencies, sweep throttles) are not in
        # pending_ids(); the releaser lets them in when they may start.
        self.holds = HoldReleaser.for_store(ctx.jobs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="simfarm-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.lock.release()

    def _loop(self) -> None:
        renew_every = self.lock.ttl_ms / 3000
        while not self._stop.is_set():
            try:
                if not self.lock.acquire_or_renew():
                    self._stop.wait(renew_every)
                    continue
                self.reap_lost()
                self.holds.run_once()
                self.dispatch_once()
                self.ctx.jobs.wait_for_nudge(min(renew_every, 0.5))
            except Exception:
                log.exception("dispatcher on %s: round failed", self.ctx.node_name)
                self._stop.wait(1.0)

    # ------------------------------------------------------------------ placing
    def rooms(self) -> list[NodeRoom]:
        """Free room on every live node that takes jobs."""
        nodes = [n for n in self.ctx.nodes.all() if n.alive and not n.held_reason]
        assigned = self.ctx.jobs.get_many([j for n in nodes for j in n.jobs])
        by_id = {j.id: j for j in assigned}
        rooms = []
        for node in nodes:
            room = NodeRoom(
                node, node.cores_total, node.memory_mb_total, node.max_jobs, dict(node.licenses)
            )
            for job_id in node.jobs:
                if job_id in by_id:
                    room.take(by_id[job_id])
            rooms.append(room)
        return rooms

    def dispatch_once(self) -> int:
        """One round: place as many pending jobs as fit. Returns how many were sent."""
        pending = self.ctx.jobs.get_many(self.ctx.jobs.pending_ids(SCAN_DEPTH))
        if not pending:
            return 0
        rooms = self.rooms()
        sent = 0
        for job in pending:
            room = next((r for r in rooms if r.fits(job)), None)
            if room is None:
                continue
            if self._schedule(job, room.node):
                room.take(job)
                sent += 1
        return sent

    def _schedule(self, job: Job, node: NodeInfo) -> bool:
        fence = self.lock.fence
        if fence is None:
            return False
        try:
            self.ctx.jobs.transition(
                job.id,
                JobState.SCHEDULED,
                new_attempt=True,
                fence=fence,
                sources=[JobState.PENDING],
                fields={
                    "node": node.name,
                    "reason": None,
                    "lease_until": repr(time.time() + SCHEDULED_LEASE_S),
                },
            )
        except (IllegalTransition, StaleAttempt, JobNotFound) as exc:
            log.info("job %s: not scheduled: %s", job.id, exc)
            return False
        attempt = job.attempt + 1
        try:
            self.send(node, job, attempt)
        except Exception as exc:
            log.exception("job %s: sending to %s failed; back to pending", job.id, node.name)
            try:
                self.ctx.jobs.transition(
                    job.id,
                    JobState.PENDING,
                    expect_attempt=attempt,
                    sources=[JobState.SCHEDULED],
                    fields={"node": None, "reason": f"send failed: {exc}"},
                )
            except (IllegalTransition, StaleAttempt, JobNotFound):
                pass
            return False
        log.info("job %s: scheduled on %s (attempt %d)", job.id, node.name, attempt)
        return True

    # ------------------------------------------------------------------ lost workers
    def reap_lost(self) -> int:
        """Requeue or fail jobs whose node is gone or whose lease expired."""
        store = self.ctx.jobs
        ids = store.ids_in_state(JobState.SCHEDULED) + store.ids_in_state(JobState.RUNNING)
        if not ids:
            return 0
        now = time.time()
        nodes = {n.name: n for n in self.ctx.nodes.all()}
        reaped = 0
        for job in store.get_many(ids):
            node = nodes.get(job.node or "")
            lease = store.field(job.id, "lease_until")
            boot = store.field(job.id, "boot")
            why = None
            if node is None or not node.alive:
                why = "node lost"
            elif job.state is JobState.RUNNING and boot and boot != node.boot_id:
                why = "worker restarted"
            elif lease is not None and float(lease) < now - LEASE_SLACK_S:
                why = "lease expired"
            if why is not None:
                reaped += self._requeue_lost(job, why)
        return reaped

    def _requeue_lost(self, job: Job, why: str) -> int:
        losses = int(self.ctx.jobs.field(job.id, "losses") or 0) + 1
        reason = f"worker lost ({job.node}: {why})"
        fields: dict[str, object] = {"reason": reason, "losses": losses, "lease_until": None}
        if job.cancel_requested:
            target = JobState.CANCELLED
            fields["reason"] = "cancelled by user; " + reason
        elif losses <= job.spec.retries:
            target = JobState.PENDING
            fields["node"] = None
        else:
            target = JobState.FAILED
            fields["error"] = "worker lost"
        try:
            self.ctx.jobs.transition(
                job.id,
                target,
                expect_attempt=job.attempt,
                sources=[JobState.SCHEDULED, JobState.RUNNING],
                fields=fields,
                event={"reason": reason},
                fence=self.lock.fence,
            )
        except (IllegalTransition, StaleAttempt, JobNotFound):
            return 0
        log.warning("job %s: %s -> %s", job.id, reason, target.value)
        return 1

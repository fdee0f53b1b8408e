"""The dispatcher: moves pending jobs onto nodes with room, and requeues jobs of lost nodes.

Which job goes where is the placement policy's decision (:mod:`simfarm.workers.dispatch`,
docs/scheduling.md): priority order with aging, resource and label routing, reservation-
based backfill. This module carries the decisions out: a fenced transition to
``scheduled`` (a paused former leader cannot schedule anything), then the Celery task.

One dispatcher is active at a time (see :mod:`simfarm.common.store.leader`). It sends a Celery
task only when a node has room, so Celery never holds a backlog: priorities live in
simfarm's sorted sets, not in broker queues.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from simfarm.common.errors import (
    IllegalTransition,
    JobNotFound,
    LicensesUnavailable,
    StaleAttempt,
)
from simfarm.common.license_pools import split_request
from simfarm.common.models import Job, NodeInfo
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store.dispatch import JobToPlace
from simfarm.common.store.leader import LeaderLock
from simfarm.common.store.leases import HANDED_BACK, Attempt, LeaseEnd, LeaseGrant
from simfarm.workers.cluster_service import CLUSTER_LABEL
from simfarm.workers.context import WorkerContext, lease_slack_s
from simfarm.workers.dispatch import BackfillMode, PolicyConfig
from simfarm.workers.dispatch.feed import SchedulerFeed
from simfarm.workers.dispatch.pools import PoolView
from simfarm.workers.farm_sampler import FarmSampler
from simfarm.workers.gates import GateKeeper
from simfarm.workers.license_poller import LicensePoller
from simfarm.workers.notifier import Notifier

log = logging.getLogger(__name__)

#: the Celery message that runs attempt ``n`` of a job (its id and name) on a node (see
#: tasks.task_message)
TaskMessage = Callable[[NodeInfo, str, str | None, int], str]
SCHEDULED_LEASE_S = 60.0
#: the gate keeper runs at most this often (not in every round: it costs a command)
GATES_EVERY_S = 0.1


def policy_config(settings: Settings) -> PolicyConfig:
    """The placement policy's settings from simfarm's."""
    return PolicyConfig(backfill=BackfillMode(settings.dispatch_backfill),
                        aging_s_per_priority=settings.dispatch_aging_s,
                        size_credit_s_per_core=settings.dispatch_size_credit_s,
                        unlimited_runtime_s=settings.dispatch_unlimited_runtime_s,
                        fairshare_s=settings.dispatch_fairshare_s,
                        half_life_s=settings.fairshare_half_life_s,
                        accounts=tuple(settings.account_book().accounts),
                        limits=settings.limits)


class Dispatcher:
    """Places pending jobs on nodes with the placement policy of :mod:`.dispatch`."""

    def __init__(self, ctx: WorkerContext, message: TaskMessage) -> None:
        self.ctx = ctx
        self.message = message
        self.lock = LeaderLock(ctx.redis, ctx.settings.key_prefix,
                               ttl_s=max(3.0, ctx.settings.heartbeat_ttl_s))
        # Eligibility hook: gated jobs (dependencies, sweep throttles) are not in
        # pending_ids(); the gate keeper lets them in when they may start.
        self.gates = GateKeeper.for_store(ctx.jobs)
        self.feed: SchedulerFeed | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="simfarm-dispatcher", daemon=True)
        # Running jobs whose lease ran out, with when this dispatcher first saw that:
        # reaped only if it still holds a heartbeat TTL later (see reap_lost).
        self._overdue: dict[tuple[str, int], float] = {}
        # Cluster jobs whose worker is lost and no worker of their cluster is alive: the
        # reason written (once) while they wait for one.
        self._orphaned: dict[str, str] = {}
        # The farm's time series, written by the leader in a thread of its own.
        self.sampler = FarmSampler(ctx, is_leader=lambda: self.lock.token is not None)
        # Notifications when jobs end, delivered beside dispatch, never in its way.
        self.notifier = Notifier(ctx, is_leader=lambda: self.lock.token is not None)
        # The farm's floating licence pools: their servers polled by the leader only.
        self.pool_names = frozenset(p.name for p in ctx.settings.licenses)
        self.license_waiting: dict[str, int] | None = None
        self.licenses = LicensePoller(ctx, is_leader=lambda: self.lock.token is not None)

    def start(self) -> None:
        self._thread.start()
        self.sampler.start()
        self.notifier.start()
        self.licenses.start()

    def stop(self) -> None:
        self._stop.set()
        self.sampler.stop()
        self.notifier.stop()
        self.licenses.stop()
        self._thread.join(timeout=5)
        self.lock.release()

    def _loop(self) -> None:
        # The lock is renewed, and lost workers looked for, on timers: a round itself
        # costs what changed (every placement is fenced, so a leader that lost the lock
        # between two renewals schedules nothing).
        renew_every = self.lock.ttl_ms / 3000
        reap_every = min(1.0, self.ctx.settings.heartbeat_s)
        next_renew = next_reap = next_gates = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_renew:
                    if not self.lock.acquire_or_renew():
                        self.feed = None  # a new term starts from what Redis says
                        self.license_waiting = None
                        self._stop.wait(renew_every)
                        continue
                    next_renew = now + renew_every
                if now >= next_reap:
                    if self.reap_lost() and self.feed is not None:
                        self.feed.nodes_changed()  # a lost node leaves the policy's view now
                    next_reap = now + reap_every
                if now >= next_gates:  # gated jobs opened within GATES_EVERY_S
                    self.gates.run_once()
                    next_gates = now + GATES_EVERY_S
                self.dispatch_once()
                self.ctx.jobs.wait_for_nudge(min(renew_every, reap_every, 0.5))
            except Exception:
                log.exception("dispatcher on %s: round failed", self.ctx.node_name)
                self.feed = None
                next_renew = 0.0
                self._stop.wait(1.0)

    # ------------------------------------------------------------------ placing
    def dispatch_once(self) -> int:
        """One round: start what the policy places now. Returns how many were sent."""
        if self.feed is None:
            self.feed = SchedulerFeed(self.ctx.jobs, self.ctx.nodes,
                                      policy_config(self.ctx.settings), self.pool_names)
            log.info("dispatcher on %s: leading (fence %s)", self.ctx.node_name, self.lock.token)
        feed = self.feed
        now = time.time()
        feed.refresh(now)
        if self.pool_names:
            self._sync_pools(feed)
        placements = feed.scheduler.schedule(now)
        sent = 0
        if placements:
            ids = [p.job_id for p in placements]
            jobs = {i: feed.placing[i] for i in ids if i in feed.placing}
            unread = [i for i in ids if i not in jobs]
            if unread:
                jobs.update(feed.queue.to_place(unread))
            for placement in placements:
                job = jobs.get(placement.job_id)
                node = feed.live.get(placement.node)
                if job is not None and node is not None and self._schedule(job, node):
                    feed.placed(placement)
                    sent += 1
                else:
                    feed.not_placed(placement)
        feed.write_waits()
        feed.save_usage()
        if self.pool_names:
            waiting = feed.scheduler.pool_waiting()
            if waiting != self.license_waiting:
                self.licenses.store.set_waiting(waiting)
                self.license_waiting = waiting
        return sent

    def _sync_pools(self, feed: SchedulerFeed) -> None:
        """Tell the policy what each licence pool may hand out: the published limit, less
        what Redis counts as held beyond the jobs the policy knows to be running (jobs of
        a node that left, not yet reaped, still hold theirs)."""
        statuses = self.licenses.store.statuses()
        known = feed.scheduler.pool_held()
        views = []
        for name in sorted(self.pool_names):
            status = statuses.get(name)
            if status is None:  # not published yet: nothing is handed out
                views.append(PoolView(name, 0))
                continue
            unknown = max(0, status.held - known.get(name, 0))
            views.append(PoolView(name, max(0, status.limit - unknown), status.outside,
                                  status.server))
        feed.scheduler.set_pools(views)

    def _schedule(self, job: JobToPlace, node: NodeInfo) -> bool:
        fence = self.lock.fence
        if fence is None:
            return False
        attempt = job.attempt + 1
        draw = split_request(job.resources.licenses, self.pool_names)[1]
        try:
            self.ctx.jobs.transition(
                job.id,
                JobState.SCHEDULED,
                new_attempt=True,
                # the message below names attempt + 1: only if the job is still at it
                expect_attempt=job.attempt,
                fence=fence,
                sources=[JobState.PENDING],
                draw=draw,
                # To the worker process it is sent to: if that process is replaced before
                # claiming it, its task message may be gone with it.
                lease=LeaseGrant(node.name, time.time() + SCHEDULED_LEASE_S,
                                 node.boot_id or None),
                fields={"reason": None},
                # the Celery task, pushed on the node's queue in the same atomic step
                push=(node.queue, self.message(node, job.id, job.name, attempt)),
            )
        except LicensesUnavailable as exc:  # the policy's view was behind Redis' count
            log.info("job %s: not scheduled: %s", job.id, exc)
            return False
        except (IllegalTransition, StaleAttempt, JobNotFound) as exc:
            log.info("job %s: not scheduled: %s", job.id, exc)
            return False
        log.info("job %s: scheduled on %s (attempt %d)", job.id, node.name, attempt)
        return True

    # ------------------------------------------------------------------ lost workers
    def reap_lost(self) -> int:
        """Requeue or fail jobs whose node is gone or whose lease expired; a job whose
        cluster job is recorded is taken over by another worker of its cluster instead
        (:meth:`_take_over`): the cluster job is not lost with its worker."""
        store = self.ctx.jobs
        ids = store.ids_in_state(JobState.SCHEDULED) + store.ids_in_state(JobState.RUNNING)
        if not ids:
            return 0
        now = time.time()
        slack = lease_slack_s(self.ctx.settings)
        nodes = {n.name: n for n in self.ctx.nodes.all()}
        lost: list[tuple[Attempt, str]] = []
        overdue: dict[tuple[str, int], float] = {}
        # The leases of every active job in one round trip; only lost ones are loaded.
        for attempt in store.attempts(ids):
            node = nodes.get(attempt.node or "")
            until = attempt.lease.until.timestamp() if attempt.lease.until else None
            boot = attempt.lease.boot
            running = attempt.state is JobState.RUNNING
            why = None
            if until == HANDED_BACK and attempt.native_id:
                why = "handed back"  # its worker stopped following the cluster job
            elif node is None or not node.alive:
                if running and until is not None and until >= now - slack:
                    # The node may only be cut off from Redis with its job still running;
                    # its runner stops the job when the lease runs out (self-fencing).
                    continue
                why = "node lost"
            elif boot and node.boot_id and boot != node.boot_id and (
                running or not attempt.native_id  # not yet on a cluster
            ):
                why = "worker restarted"
            elif until is not None and until < now - slack:
                why = "lease expired"
            if why is not None and running and why not in ("worker restarted", "handed back"):
                # A worker back from a Redis outage may hold the finished job's outcome and
                # record it within moments: give it one heartbeat TTL to do so (the job's
                # process is gone by now: stopped by the lease or finished).
                key = (attempt.job_id, attempt.number)
                first = overdue[key] = self._overdue.get(key, time.monotonic())
                if time.monotonic() - first < self.ctx.settings.heartbeat_ttl_s:
                    continue
            if why is not None:
                lost.append((attempt, why))
        self._overdue = overdue
        if not lost:
            return 0
        jobs = {j.id: j for j in store.get_many([a.job_id for a, _ in lost])}
        reaped = 0
        for attempt, why in lost:
            job = jobs.get(attempt.job_id)
            if job is None or (job.state, job.attempt) != (attempt.state, attempt.number):
                continue
            if job.native_id:  # the cluster job may well go on: never lost, taken over
                reaped += self._take_over(job, why, nodes)
            else:
                reaped += self._requeue_lost(job, why)
        return reaped

    def _take_over(self, job: Job, why: str, nodes: dict[str, NodeInfo]) -> int:
        """Hand a cluster job whose worker is lost (or handed it back) to another live
        worker of the same cluster, as a new attempt that follows the cluster job (and
        relays a cancel); with none alive it waits, its state unchanged, for one."""
        cluster = job.native_cluster
        peers = [n for n in nodes.values() if n.alive and n.drain is None
                 and n.labels.get(CLUSTER_LABEL) == cluster
                 and (n.name != job.node or why == "worker restarted")]
        reason = f"worker lost ({job.node}: {why})"
        if not cluster or not peers:
            waiting = (f"{reason}; waiting for a worker of {cluster or job.node} to follow "
                       f"{job.native_scheduler} job {job.native_id}")
            if self._orphaned.get(job.id) != waiting:
                self._orphaned[job.id] = waiting
                self.ctx.jobs.update_fields(job.id, {"reason": waiting})
                log.warning("job %s: %s", job.id, waiting)
            return 0
        peer = min(peers, key=lambda n: (len(n.jobs) / max(1, n.max_jobs), n.name))
        attempt = job.attempt + 1
        taken = (f"{reason}; {peer.name} follows {job.native_scheduler} job {job.native_id}"
                 + (" and relays the cancel" if job.cancel_requested else ""))
        try:
            self.ctx.jobs.transition(
                job.id, JobState.SCHEDULED, new_attempt=True, fence=self.lock.fence,
                expect_attempt=job.attempt, sources=[job.state],
                lease=LeaseGrant(peer.name, time.time() + SCHEDULED_LEASE_S,
                                 peer.boot_id or None),
                fields={"reason": taken}, event={"reason": taken, "takeover": True},
                push=(peer.queue, self.message(peer, job.id, job.spec.name, attempt)))
        except (IllegalTransition, StaleAttempt, JobNotFound):
            return 0
        self._orphaned.pop(job.id, None)
        log.warning("job %s: %s (attempt %d)", job.id, taken, attempt)
        return 1

    def _requeue_lost(self, job: Job, why: str) -> int:
        never_started = job.state is JobState.SCHEDULED
        losses = job.losses + (0 if never_started else 1)
        reason = f"worker lost ({job.node}: {why})"
        fields: dict[str, object] = {"reason": reason}
        if job.cancel_requested:
            target = JobState.CANCELLED
            fields["reason"] = "cancelled by user; " + reason
        elif never_started or losses <= job.spec.retries:  # a job that never ran costs none
            target = JobState.PENDING
        else:
            target = JobState.FAILED
            fields["error"] = "worker lost"
        try:
            self.ctx.jobs.transition(
                job.id,
                target,
                expect_attempt=job.attempt,
                # Only from the state the verdict was drawn from: a scheduled attempt of a
                # restarted worker's node may have been claimed by its new incarnation
                # since (its message was redelivered); that run is not lost.
                sources=[job.state],
                lease=LeaseEnd(requeued=target is JobState.PENDING, losses=losses),
                fields=fields,
                event={"reason": reason},
                fence=self.lock.fence,
            )
        except (IllegalTransition, StaleAttempt, JobNotFound):
            return 0
        log.warning("job %s: %s -> %s", job.id, reason, target.value)
        return 1

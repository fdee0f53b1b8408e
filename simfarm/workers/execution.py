"""The body of the ``run_job`` task: claim the attempt, run it under its supervisor
(:mod:`.attempt`) with its files in place (:mod:`.files`), record the outcome.

Exactly-once is enforced here, not by Celery: the job moves ``scheduled → running`` only
if the task's attempt number and node are still the job's current ones, so a redelivered
or stale Celery message exits without running anything. With Redis replicas (Sentinel)
the claim and the outcome count only once a replica has them (``WAIT``), so a failover
cannot take either along and make the job run again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from simfarm.common.errors import IllegalTransition, JobNotFound, NotReplicated, StaleAttempt
from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.common.store.leases import LeaseEnd, LeaseGrant
from simfarm.common.store.replication import ReplicationBarrier
from simfarm.workers.attempt import AttemptSupervisor
from simfarm.workers.context import WorkerContext
from simfarm.workers.files import run_with_files
from simfarm.workers.outcome import Outcome
from simfarm.workers.redis_guard import retry_while_redis_away

log = logging.getLogger(__name__)

RECORD_RETRY_S = 120.0  # how long a finished attempt waits for Redis to record its outcome
CLAIM_RETRY_S = 30.0  # how long a delivered attempt retries its claim while Redis is away


@dataclass(frozen=True)
class Claim:
    """A claimed attempt: whether its runner moves it to ``running`` itself (a cluster
    runner: the job stays ``scheduled`` while it is queued there) and when the lease
    set by the claim ends (wall clock)."""

    self_starting: bool
    lease_until: float
    #: the job as the claim left it (None: read it again)
    job: Job | None = None


def _confirmed(barrier: ReplicationBarrier, until: float, job_id: str, what: str) -> None:
    """Wait for the replicas to have every write so far (a claim, an outcome): with
    replicas (Sentinel), a primary that dies first takes it along. Unconfirmed, raise a
    connection error (the caller retries the write, on the new primary after a failover)
    until ``until`` (monotonic), then carry on with a warning: a replica that is just
    down must not hold the worker's slot for longer."""
    try:
        barrier.wait()
    except NotReplicated as exc:
        if time.monotonic() < until:
            raise redis.ConnectionError(str(exc)) from exc
        log.warning("job %s: %s on the primary only: %s", job_id, what, exc)


def _barrier(ctx: WorkerContext) -> tuple[ReplicationBarrier, float]:
    """The replication barrier for one write of an attempt and until when (monotonic)
    an unconfirmed write is retried: the attempt's lease, within which a failover comes."""
    barrier = ReplicationBarrier(ctx.redis, ctx.jobs.keys, ctx.settings.wait_replicas(),
                                 ctx.settings.redis_wait_timeout_ms)
    return barrier, time.monotonic() + ctx.settings.heartbeat_ttl_s


def _claim(ctx: WorkerContext, job_id: str, attempt: int, retry: bool) -> Claim | None:
    """Claim the attempt on this node (``scheduled → running`` unless its runner starts
    itself); None when this attempt must not run. ``retry``: an earlier try of this
    delivery may have claimed it already (its reply lost)."""
    store = ctx.jobs
    until = time.time() + ctx.settings.heartbeat_ttl_s
    # Only scheduler workers have self-starting runners; others skip the read.
    runners = ctx.runners
    if runners.self_starting and runners.starts_itself(store.get(job_id).spec.kind):
        if not store.claim_scheduled(job_id, attempt, ctx.node_name, until):
            log.info("job %s: attempt %d not run: not current or already taken", job_id, attempt)
            return None
        return Claim(self_starting=True, lease_until=until)
    try:
        job = store.start_attempt(job_id, attempt, LeaseGrant(ctx.node_name, until, ctx.boot_id))
    except IllegalTransition:
        # A retry after a lost reply: the first try may have claimed it for this process.
        # Only a retry: another delivery of the same message (kombu hands unacknowledged
        # messages back at a reconnect) finds the attempt running here and must not run
        # it a second time.
        now = store.attempt(job_id)
        if (retry and now.state is JobState.RUNNING and now.number == attempt
                and now.lease.boot == ctx.boot_id):
            first = now.lease.until.timestamp() if now.lease.until else until
            return Claim(self_starting=False, lease_until=first)
        raise
    return Claim(self_starting=False, lease_until=until, job=job)


def _claim_replicated(ctx: WorkerContext, job_id: str, attempt: int) -> Claim | None:
    """:func:`_claim`, retried while Redis is away, and taken as made only once the
    replicas have it: a claim that a dying primary took along would leave the job
    ``scheduled`` on the new one, the outcome of this run could not be recorded there
    and the job would run again. The job's program starts only after this."""
    barrier, confirm_until = _barrier(ctx)
    tries = 0

    def claim() -> Claim | None:
        nonlocal tries
        tries += 1
        made = _claim(ctx, job_id, attempt, retry=tries > 1)
        if made is not None and not made.self_starting:
            _confirmed(barrier, confirm_until, job_id, f"claim of attempt {attempt}")
        return made

    # The claim is fenced by attempt and node, so retrying it is safe; past the
    # scheduled lease the dispatcher hands the job on and the claim goes stale.
    return retry_while_redis_away(claim, CLAIM_RETRY_S)


def execute(ctx: WorkerContext, job_id: str, attempt: int) -> JobState | None:
    """Run one attempt of a job; returns the state it ended in, or None if skipped."""
    store = ctx.jobs
    if ctx.shutting_down.is_set():
        # A task that arrives while the worker stops: leave the attempt unclaimed; the
        # dispatcher hands it on once this node is gone (a free retry: it never started).
        log.info("job %s: attempt %d not started: worker %s is stopping", job_id, attempt,
                 ctx.node_name)
        return None
    try:
        claim = _claim_replicated(ctx, job_id, attempt)
        if claim is None:
            return None
        job = claim.job or retry_while_redis_away(lambda: store.get(job_id), CLAIM_RETRY_S)
    except (StaleAttempt, IllegalTransition, JobNotFound) as exc:
        log.info("job %s: attempt %d not run: %s", job_id, attempt, exc)
        return None
    except redis.RedisError as exc:
        log.warning("job %s: attempt %d not started, Redis unavailable: %s",
                    job_id, attempt, exc)
        return None
    supervisor = AttemptSupervisor(ctx, job_id, attempt, claim.lease_until)
    # A cluster runner relays a cancel to the cluster job (one it adopts may be running):
    # a cancel is not a reason for it not to start.
    supervisor.cancel_stops = not claim.self_starting
    if claim.job is not None:
        supervisor.claimed(claim.job)
    ctx.active.add(job_id, attempt)
    recorded: JobState | None = None
    try:
        runner = ctx.runners.runner_for(job.spec.kind)
        # Nothing starts for an attempt that must stop already (say its lease ran out
        # while Redis was away between the claim and now).
        stop = supervisor.check()
        if stop is not None:
            log.info("job %s: attempt %d not started: %s", job_id, attempt, stop.reason)
            outcome = stop.outcome()
        elif runner is None:
            outcome = Outcome(
                JobState.FAILED, reason=f"this worker cannot run {job.spec.kind!r} jobs"
            )
        else:
            try:
                outcome = run_with_files(supervisor, job, runner)
            except Exception as exc:  # a runner bug must not leave the job running
                log.exception("job %s: runner crashed", job_id)
                outcome = Outcome(JobState.FAILED, reason=f"internal error: {exc}")
        recorded = _record(ctx, job_id, attempt, outcome, from_scheduled=claim.self_starting)
        return recorded
    finally:
        ctx.active.discard(job_id)
        if ctx.orphans is not None:  # the outcome is this worker's to record, done
            ctx.orphans.forget(job_id, attempt)
        if recorded is None:  # a recorded outcome woke the dispatcher already
            try:
                store.nudge_dispatcher()
            except redis.RedisError:
                pass  # the dispatcher's own polling picks the freed room up


def _record(ctx: WorkerContext, job_id: str, attempt: int, outcome: Outcome,
            from_scheduled: bool = False) -> JobState | None:
    if outcome.handed_back:
        _hand_back(ctx, job_id, attempt, outcome)
        return None
    target, fields, event = outcome.recorded()
    barrier, confirm_until = _barrier(ctx)

    def record() -> None:
        try:
            ctx.jobs.transition(
                job_id,
                target,
                expect_attempt=attempt,
                sources=[JobState.SCHEDULED, JobState.RUNNING] if from_scheduled
                else [JobState.RUNNING],
                lease=LeaseEnd(requeued=outcome.interrupted, timed_out=outcome.timed_out),
                fields=fields,
                event=event,
                nudge=True,  # the room this attempt held is free
            )
        except IllegalTransition:
            now = ctx.jobs.attempt(job_id)  # a retry: did an earlier try record it?
            if not (now.state is target and now.number == attempt):
                raise
        # The outcome counts once a replica has it: a primary that dies first takes it
        # along, the job would look running on the promoted replica, and its lease
        # would run out and run it again.
        _confirmed(barrier, confirm_until, job_id,
                   f"outcome {target.value} of attempt {attempt} recorded")

    def retrying(exc: redis.RedisError) -> None:
        log.warning("job %s: Redis unavailable, retrying to record %s: %s",
                    job_id, target.value, exc)

    try:
        # The outcome is known; keep it until Redis answers again. Meanwhile the lease
        # runs out and the dispatcher may hand the job on: then this attempt is stale.
        retry_while_redis_away(record, max(RECORD_RETRY_S, 10 * ctx.settings.heartbeat_ttl_s),
                                retrying)
    except (StaleAttempt, IllegalTransition, JobNotFound) as exc:
        log.warning("job %s: outcome of attempt %d not recorded: %s", job_id, attempt, exc)
        return None
    except redis.RedisError as exc:
        log.error("job %s: outcome %s of attempt %d lost, Redis unavailable: %s",
                  job_id, target.value, attempt, exc)
        return None
    return target


def _hand_back(ctx: WorkerContext, job_id: str, attempt: int, outcome: Outcome) -> None:
    """The attempt's cluster job goes on without this worker: end the lease so another
    worker of the cluster takes it over (fenced by the attempt, retried while Redis is
    away; meanwhile the lease runs out and the dispatcher hands it on anyway)."""
    try:
        current = retry_while_redis_away(
            lambda: ctx.jobs.hand_back(job_id, attempt),
            max(RECORD_RETRY_S, 10 * ctx.settings.heartbeat_ttl_s))
    except redis.RedisError as exc:
        log.warning("job %s: attempt %d not handed back, Redis unavailable: %s", job_id,
                    attempt, exc)
        return
    if current:
        log.info("job %s: attempt %d handed back: %s", job_id, attempt, outcome.reason)

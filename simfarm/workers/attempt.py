"""The supervisor of one attempt of a job on this worker: its lease, cancel, shutdown and
self-fencing, the same for every kind of run — a local process, an HFSS solve, a
cluster job, and the staging of project files around any of them.

The runner (or the transfer) calls :meth:`AttemptSupervisor.check` from its own loop,
often (every tick, every chunk); the supervisor does what is due and says whether the
attempt must stop and why (:class:`Stop`):

* **cancel** — polled every :data:`CANCEL_CHECK_S`; a runner that relays the cancel
  itself (a cluster job, stopped by its scheduler) reads :attr:`~AttemptSupervisor.
  cancelled` instead of being stopped;
* **shutdown** — the worker is stopping: the attempt goes back to the queue;
* **lease** — renewed every ``heartbeat_s`` for ``heartbeat_ttl_s``; refused (the
  attempt was taken from this worker) stops it;
* **self-fencing** — while Redis cannot be reached the attempt carries on (the process
  runs, the transfer goes on, the cluster job is followed), but when the lease it holds
  runs out it stops, before the dispatcher — which waits for the lease plus a slack —
  may hand the job on (see :func:`simfarm.workers.context.lease_slack_s`).

Redis calls go through one :class:`~simfarm.workers.redis_guard.RedisGuard` per attempt
(see there for the outage policy).
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.workers.context import WorkerContext
from simfarm.workers.outcome import Outcome
from simfarm.workers.redis_guard import RedisGuard

log = logging.getLogger(__name__)
T = TypeVar("T")

CANCEL_CHECK_S = 0.2


class StopKind(enum.Enum):
    """Why an attempt must stop."""

    CANCEL = "cancel"
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease lost"
    LEASE_EXPIRED = "lease expired"


@dataclass(frozen=True)
class Stop:
    """The attempt must stop: ``kind`` and a reason a person can read."""

    kind: StopKind
    reason: str

    def outcome(self) -> Outcome:
        """The attempt's outcome: cancelled, or back to the queue for another attempt."""
        if self.kind is StopKind.CANCEL:
            return Outcome(JobState.CANCELLED, reason=self.reason)
        return Outcome(None, reason=self.reason)


class AttemptSupervisor:
    """Watches one attempt (``job_id``, ``number``) from its claim to its outcome.

    ``lease_until`` is the end (wall clock) of the lease the claim set.
    """

    def __init__(self, ctx: WorkerContext, job_id: str, number: int,
                 lease_until: float) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.number = number
        self.redis = RedisGuard(job_id, ctx.settings.heartbeat_s)
        now = time.monotonic()
        #: when the lease held runs out (monotonic clock)
        self.lease_deadline = now + max(0.0, lease_until - time.time())
        self._next_renewal = now + ctx.settings.heartbeat_s
        self._next_cancel_check = 0.0
        #: whether a cancel ends the attempt here (off while results are sent back)
        self.watch_cancel = True
        #: False for runners that relay a cancel themselves (a cluster job): they read
        #: :attr:`cancelled` and keep following until the job ends
        self.cancel_stops = True
        #: a cancel was seen (it is never taken back)
        self.cancelled = False

    @property
    def node_name(self) -> str:
        return self.ctx.node_name

    def call(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` (a Redis call), or None when Redis is unreachable or not probed now."""
        if not self.redis.allowed():
            return None
        return self.redis.call(fn)

    def send(self, fn: Callable[[], object]) -> bool:
        """Like :meth:`call` for a write without a result; True when it was done."""
        return self.call(lambda: (fn(), True)[1]) is True

    def claimed(self, job: Job) -> None:
        """The claim just read ``job``: its cancel flag stands for the first cancel poll
        (one Redis round trip less before the program starts)."""
        self.cancelled = self.cancelled or job.cancel_requested
        self._next_cancel_check = time.monotonic() + CANCEL_CHECK_S

    def check(self) -> Stop | None:
        """Do what is due (cancel poll, lease renewal) and say whether to stop."""
        settings = self.ctx.settings
        now = time.monotonic()
        if self.watch_cancel and not self.cancelled and now >= self._next_cancel_check:
            self._next_cancel_check = now + CANCEL_CHECK_S
            self._read_cancel()
        if self.cancelled and self.watch_cancel and self.cancel_stops:
            return Stop(StopKind.CANCEL, "cancelled by user")
        if self.ctx.shutting_down.is_set():
            return Stop(StopKind.SHUTDOWN, f"worker {self.node_name} stopped")
        if now >= self._next_renewal and self.redis.allowed():
            self._next_renewal = now + settings.heartbeat_s
            until = time.time() + settings.heartbeat_ttl_s
            renewed = self.redis.call(functools.partial(
                self.ctx.jobs.renew_lease, self.job_id, self.number, until))
            if renewed is True:
                self.lease_deadline = now + settings.heartbeat_ttl_s
            elif renewed is False:
                stop = self._not_renewed(now)
                if stop is not None:
                    return stop
        # a Redis call above may have blocked for its timeout: read the clock again
        if time.monotonic() >= self.lease_deadline:
            reason = f"lease expired: Redis could not be reached from {self.node_name}"
            log.warning("job %s: attempt %d: %s", self.job_id, self.number, reason)
            return Stop(StopKind.LEASE_EXPIRED, reason)
        return None

    def _read_cancel(self) -> None:
        if self.call(functools.partial(self.ctx.jobs.cancel_requested, self.job_id)) is True:
            self.cancelled = True
            log.info("job %s: attempt %d: cancel requested", self.job_id, self.number)

    def _not_renewed(self, now: float) -> Stop | None:
        """The lease was refused: the attempt is no longer this worker's — unless the job
        was cancelled (while queued on a cluster: the relayed cancel ends it)."""
        if self.watch_cancel and not self.cancelled:
            self._read_cancel()
        if self.cancelled and self.watch_cancel:
            if self.cancel_stops:
                return Stop(StopKind.CANCEL, "cancelled by user")
            # Cancelled is final: no other attempt can take the job while the cancel is
            # relayed, so Redis answering is all the lease this attempt needs.
            self.lease_deadline = now + self.ctx.settings.heartbeat_ttl_s
            return None
        log.warning("job %s: attempt %d is no longer this worker's; stopping",
                    self.job_id, self.number)
        return Stop(StopKind.LEASE_LOST, "lease lost: the job was taken from this worker")


#: Runs one attempt of a job (its project files in place) under its supervisor.
Runner = Callable[[AttemptSupervisor, Job], Outcome]

"""Runs one job attempt on a cluster: submit (or adopt), follow, cancel, report.

The job stays ``scheduled`` while it waits in the cluster queue, with the cluster job
id in ``native_id`` and the cluster's own reason in ``reason``; it becomes ``running``
when the cluster starts it and ends with the cluster's verdict (exit code from the
job's exit-code file or accounting, the cluster's reason kept). Output the job script
writes to ``<native_id>.out`` is streamed as log events.

A worker that stops (or loses Redis past its lease) leaves its cluster jobs alone and
hands the attempt back; a worker that is lost leaves it too. Either way the job keeps its
state and its cluster job, and the dispatcher hands it to another live worker of the same
cluster (same scheduler and cluster name, :meth:`ClusterService.identity`), whose attempt
adopts the cluster job instead of submitting again: it follows it to its end and relays a
cancel (``scancel``, ``bkill``, ``qdel``, ``job cancel``).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import time
from pathlib import Path
from typing import Any

import redis

from simfarm.common.aedt import AEDTNotFoundError, build_ansysedt_argv, find_aedt
from simfarm.common.errors import IllegalTransition, JobNotFound, StaleAttempt
from simfarm.common.license_pools import cluster_request, pools_by_name
from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.common.store.leases import LeaseGrant
from simfarm.workers.aedt_log import LogTail
from simfarm.workers.attempt import AttemptSupervisor, StopKind
from simfarm.workers.cluster_service import ClusterService
from simfarm.workers.context import WorkerContext
from simfarm.workers.outcome import Outcome
from simfarm.workers.schedulers import ClusterJobRequest, ClusterOptions, ClusterState
from simfarm.workers.schedulers.errors import CommandError, SchedulerError
from simfarm.workers.schedulers.types import ClusterStatus

log = logging.getLogger(__name__)

TICK_S = 0.5
CANCEL_WAIT_S = 120.0
_FINAL = {ClusterState.COMPLETED: JobState.COMPLETED, ClusterState.FAILED: JobState.FAILED,
          ClusterState.CANCELLED: JobState.CANCELLED}


def cluster_job_dir(ctx: WorkerContext, job: Job) -> Path:
    """Where the job's script, output and exit-code file go (shared with the cluster)."""
    root = ctx.settings.scheduler_job_dir or ctx.settings.state_dir / "cluster-jobs"
    return Path(root) / job.id


def job_options(ctx: WorkerContext, job: Job) -> ClusterOptions:
    """The worker's default options, overridden by what the job set explicitly."""
    merged: dict[str, Any] = dict(ctx.settings.scheduler_options)
    explicit = job.spec.hfss.scheduler_options if job.spec.hfss else job.spec.cluster
    if explicit is not None:
        merged.update(explicit.model_dump(include=explicit.model_fields_set))
        if job.spec.hfss is not None:  # PyEDB's config always carries a wall time
            merged.setdefault("time", explicit.time)
    need = job.spec.resources
    if "cores_per_node" not in merged and "tasks_per_node" not in merged and need.cores > 1:
        merged["cores_per_node"] = need.cores
    if "memory" not in merged and need.memory_mb:
        merged["memory"] = f"{need.memory_mb}MB"
    return ClusterOptions.from_any(merged, time_limit_s=job.spec.timeout_s)


def job_argv(job: Job) -> tuple[list[str], str | None]:
    """The command the cluster runs and its working directory."""
    config = job.spec.hfss
    if config is None:
        return list(job.spec.argv), job.spec.cwd
    executable = config.ansys_edt_path
    if not executable:
        executable = str(find_aedt(None).executable)
    return build_ansysedt_argv(config, executable), (
        job.spec.cwd or str(Path(config.project_path).parent))


class ClusterJobRunner:
    """Follows one attempt of one job on the cluster (runs in the Celery task thread).

    The attempt's supervisor keeps the lease while the job is queued and while it runs;
    a cancel is relayed to the cluster (``scancel``...) and the attempt follows the
    cluster job until the cluster reports it ended.
    """

    def __init__(self, supervisor: AttemptSupervisor, service: ClusterService,
                 job: Job) -> None:
        self.supervisor = supervisor
        supervisor.cancel_stops = False  # the cluster stops the job; this follows it
        self.ctx = supervisor.ctx
        self.service = service
        self.job = job
        self.attempt = supervisor.number
        self.updates: queue.Queue[ClusterStatus] = queue.Queue()
        self.native_id = ""
        self.job_dir = cluster_job_dir(self.ctx, job)
        self.running = False
        self.cancel_sent_at: float | None = None

    @property
    def where(self) -> str:
        return f"{self.service.kind} job {self.native_id}"

    # ------------------------------------------------------------------ steps
    def run(self) -> Outcome:
        problem = self._start()
        if problem is not None:
            return problem
        self.service.poller.watch(self.native_id, self.job_dir, self.updates.put, self._problem)
        try:
            return self._follow()
        finally:
            self.service.poller.unwatch(self.native_id)

    def _start(self) -> Outcome | None:
        """Adopt the cluster job of an earlier attempt, or submit a new one."""
        previous = self.job.native_id
        if previous and self.job.native_scheduler == self.service.kind \
                and self.job.native_cluster in (None, self.service.identity()):
            self.native_id = previous
            self._info(f"following {self.where} submitted by an earlier attempt")
            return None
        try:
            options = job_options(self.ctx, self.job)
            argv, cwd = job_argv(self.job)
            env = {**self.job.spec.env, "SIMFARM_JOB_ID": self.job.id}
            licenses = cluster_request(self.job.spec.resources.licenses,
                                       pools_by_name(self.ctx.settings.licenses))
            request = ClusterJobRequest(job_id=self.job.id, argv=argv, job_dir=self.job_dir,
                                        name=self.job.spec.name, env=env, cwd=cwd,
                                        attempt=self.attempt, licenses=licenses)
            submitted = self.service.backend.submit(request, options)
        except (SchedulerError, AEDTNotFoundError, ValueError, OSError) as exc:
            log.warning("job %s: not submitted to %s: %s", self.job.id, self.service.kind, exc)
            return Outcome(JobState.FAILED, reason=f"{self.service.kind} submission failed: {exc}")
        self.native_id = submitted.native_id
        if not self._record_native_id():
            return self._withdraw()
        self._info(f"submitted to {self.service.kind} as job {self.native_id}",
                   native_id=self.native_id, script=str(submitted.script_path))
        return None

    def _record_native_id(self) -> bool:
        """Record the cluster job on the job (what a later attempt adopts), retried while
        Redis is away as long as the lease holds; False if it could not be recorded."""
        record = functools.partial(
            self.ctx.jobs.record_cluster_job, self.job.id, self.service.kind, self.native_id,
            f"submitted to {self.service.kind} as job {self.native_id}",
            self.service.identity())
        while not self.supervisor.send(record):
            if time.monotonic() >= self.supervisor.lease_deadline:
                return False
            time.sleep(TICK_S)
        return True

    def _withdraw(self) -> Outcome:
        """The cluster job could not be recorded, so no attempt could follow it: cancel it
        rather than leave it running beside the next attempt's."""
        try:
            self.service.backend.cancel(self.native_id)
        except CommandError as exc:
            log.error("job %s: %s left running, cannot cancel it: %s", self.job.id,
                      self.where, exc)
        reason = (f"lease expired: Redis could not be reached from {self.ctx.node_name} to "
                  f"record {self.where}, which was cancelled")
        log.warning("job %s: %s", self.job.id, reason)
        return Outcome(None, reason=reason)

    def _follow(self) -> Outcome:
        """Follow the cluster job to its end. While Redis cannot be reached the cluster job
        keeps running and is followed on; once the lease has run out the attempt ends
        (back to pending) and the next attempt adopts the cluster job, never a second."""
        tail = LogTail(self.job_dir / f"{self.native_id}.out")
        supervisor = self.supervisor
        while True:
            try:
                status = self.updates.get(timeout=TICK_S)
            except queue.Empty:
                status = None
            supervisor.call(functools.partial(self._stream, tail))
            if status is not None:
                outcome = self._on_status(status)
                if outcome is not None:
                    supervisor.call(functools.partial(self._stream, tail, final=True))
                    return outcome
            stop = supervisor.check()
            if supervisor.cancelled:
                self._relay_cancel()
            if stop is None:
                continue
            if stop.kind is StopKind.LEASE_LOST:
                log.warning("job %s: %s left to the current attempt", self.job.id, self.where)
                return stop.outcome()
            # The cluster job goes on: another worker of the cluster follows it (and
            # relays a cancel) from where this one stops, never a second cluster job.
            return Outcome(None, reason=f"{stop.reason}; {self.where} keeps running and "
                           "another worker of the cluster follows it", handed_back=True)

    def _on_status(self, status: ClusterStatus) -> Outcome | None:
        where = f"{self.service.kind} job {self.native_id}"
        detail = status.native_state + (f" ({status.reason})" if status.reason else "")
        if status.state is ClusterState.QUEUED:
            self.supervisor.send(functools.partial(
                self.ctx.jobs.update_fields, self.job.id, {"reason": f"{where}: {detail}"}))
            self._info(f"{where} queued: {detail}", native_state=status.native_state)
            return None
        if status.state is ClusterState.RUNNING:
            self._mark_running(f"{where}: {detail}")
            return None
        target = _FINAL[status.state]
        if target is not JobState.CANCELLED and status.exit_code is not None:
            self._mark_running(f"{where} ran")  # it did run, however briefly
        reason = None if target is JobState.COMPLETED else f"{where}: {detail}"
        if status.exit_code is not None and target is JobState.FAILED \
                and "exit code" not in detail:
            reason = f"{reason}, exit code {status.exit_code}"
        log.info("job %s: %s ended %s (%s, from %s)", self.job.id, where, target.value,
                 detail, status.source)
        return Outcome(target, exit_code=status.exit_code, reason=reason,
                       fields={"native_state": status.native_state})

    def _mark_running(self, reason: str) -> None:
        if self.running:
            return
        self.running = True
        try:
            self.ctx.jobs.transition(
                self.job.id, JobState.RUNNING, expect_attempt=self.attempt,
                expect_node=self.ctx.node_name, sources=[JobState.SCHEDULED],
                lease=LeaseGrant(self.ctx.node_name,
                                 time.time() + self.ctx.settings.heartbeat_ttl_s,
                                 self.ctx.boot_id),
                fields={"reason": reason})
        except (IllegalTransition, StaleAttempt, JobNotFound) as exc:
            log.info("job %s: not marked running: %s", self.job.id, exc)
        except redis.RedisError as exc:  # the outcome, recorded later, says it ran
            self.running = False
            log.warning("job %s: not marked running, Redis unavailable: %s", self.job.id, exc)

    def _relay_cancel(self) -> None:
        """Send the cancel to the cluster (again every :data:`CANCEL_WAIT_S` until the
        cluster reports the job ended)."""
        now = time.monotonic()
        if self.cancel_sent_at is not None and now - self.cancel_sent_at < CANCEL_WAIT_S:
            return
        self.cancel_sent_at = now
        try:
            self.service.poller.cancel(self.native_id)
            self._info(f"cancel sent to {self.service.kind} job {self.native_id}")
        except CommandError as exc:
            self._info(f"cancel of {self.service.kind} job {self.native_id} failed; "
                       f"will try again: {exc}")
            self.cancel_sent_at = now - CANCEL_WAIT_S + 5  # retry in a few seconds

    # ------------------------------------------------------------------ events
    def _stream(self, tail: LogTail, final: bool = False) -> None:
        try:
            lines = tail.read_lines(final=final)
        except OSError:
            return
        if lines:
            self.ctx.jobs.append_events(self.job.id, [
                ("log", {"stream": "stdout", "line": line[:8192]}) for line in lines])

    def _info(self, message: str, **data: object) -> None:
        """An info event on the job (skipped while Redis cannot be reached)."""
        self.supervisor.send(functools.partial(
            self.ctx.jobs.append_events, self.job.id,
            [("info", {"message": message, **data})]))

    def _problem(self, message: str) -> None:
        """A problem the poller met (its own thread: not through the supervisor)."""
        try:
            self.ctx.jobs.append_events(
                self.job.id, [("info", {"message": message, "native_id": self.native_id})])
        except Exception:
            log.exception("job %s: cannot record cluster problem", self.job.id)


def run_on_cluster(supervisor: AttemptSupervisor, job: Job) -> Outcome:
    """The runner of every job kind on a scheduler worker."""
    service = supervisor.ctx.cluster
    if service is None:
        return Outcome(JobState.FAILED, reason=f"node {supervisor.node_name} has no scheduler")
    log.info("job %s: forwarding attempt %d to %s (pid %d)", job.id, supervisor.number,
             service.kind, os.getpid())
    return ClusterJobRunner(supervisor, service, job).run()

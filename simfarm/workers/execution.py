"""The body of the ``run_job`` task: claim the attempt, run, record the outcome.

Exactly-once is enforced here, not by Celery: the job moves ``scheduled → running`` only
if the task's attempt number and node are still the job's current ones, so a redelivered
or stale Celery message exits without running anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from simfarm.common.errors import IllegalTransition, JobNotFound, StaleAttempt
from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.workers.context import WorkerContext
from simfarm.workers.files import run_with_files
from simfarm.workers.hfss_runner import run_hfss
from simfarm.workers.local_runner import LocalRunner
from simfarm.workers.outcome import Outcome

log = logging.getLogger(__name__)

Runner = Callable[[WorkerContext, Job, int], Outcome]
_runners: dict[str, Runner] = {}
_self_starting: set[str] = set()
_active: dict[str, int] = {}
_active_lock = threading.Lock()


def register_runner(kind: str, runner: Runner, *, starts_itself: bool = False) -> None:
    """Use ``runner`` for jobs of ``kind`` (``command``, ``hfss``...) on this worker.

    A runner that ``starts_itself`` (cluster runners) gets the attempt while the job is
    still ``scheduled`` and moves it to ``running`` when the job really starts.
    """
    _runners[kind] = runner
    if starts_itself:
        _self_starting.add(kind)
    else:
        _self_starting.discard(kind)


def _run_local(ctx: WorkerContext, job: Job, attempt: int) -> Outcome:
    return LocalRunner(ctx, job, attempt).run()


register_runner("command", _run_local)
register_runner("hfss", run_hfss)


def active_jobs() -> dict[str, int]:
    """Jobs this worker process is running now, with their attempt numbers."""
    with _active_lock:
        return dict(_active)


def execute(ctx: WorkerContext, job_id: str, attempt: int) -> JobState | None:
    """Run one attempt of a job; returns the state it ended in, or None if skipped."""
    store = ctx.jobs
    try:
        # Only scheduler workers register self-starting runners; others skip the read.
        self_starting = bool(_self_starting) and store.get(job_id).spec.kind in _self_starting
        if self_starting:
            if not store.claim_scheduled(job_id, attempt, ctx.node_name,
                                         time.time() + ctx.settings.heartbeat_ttl_s):
                log.info("job %s: attempt %d not run: not current or already taken",
                         job_id, attempt)
                return None
        else:
            store.transition(
                job_id,
                JobState.RUNNING,
                expect_attempt=attempt,
                expect_node=ctx.node_name,
                sources=[JobState.SCHEDULED],
                fields={
                    "lease_until": repr(time.time() + ctx.settings.heartbeat_ttl_s),
                    "boot": ctx.boot_id,
                },
            )
    except (StaleAttempt, IllegalTransition, JobNotFound) as exc:
        log.info("job %s: attempt %d not run: %s", job_id, attempt, exc)
        return None
    with _active_lock:
        _active[job_id] = attempt
    try:
        job = store.get(job_id)
        runner = _runners.get(job.spec.kind)
        if runner is None:
            outcome = Outcome(
                JobState.FAILED, reason=f"this worker cannot run {job.spec.kind!r} jobs"
            )
        else:
            try:
                outcome = run_with_files(ctx, job, attempt, runner)
            except Exception as exc:  # a runner bug must not leave the job running
                log.exception("job %s: runner crashed", job_id)
                outcome = Outcome(JobState.FAILED, reason=f"internal error: {exc}")
        return _record(ctx, job_id, attempt, outcome, from_scheduled=self_starting)
    finally:
        with _active_lock:
            _active.pop(job_id, None)
        store.nudge_dispatcher()


def _record(ctx: WorkerContext, job_id: str, attempt: int, outcome: Outcome,
            from_scheduled: bool = False) -> JobState | None:
    fields = dict(outcome.fields)
    fields["lease_until"] = None
    fields["pid"] = None
    fields["boot"] = None
    if outcome.interrupted:
        fields.update({"node": None, "reason": outcome.reason})
        target = JobState.PENDING
    else:
        assert outcome.state is not None
        target = outcome.state
        if outcome.exit_code is not None:
            fields["exit_code"] = outcome.exit_code
        if outcome.reason:
            fields["reason"] = outcome.reason
            if target is JobState.FAILED:
                fields["error"] = outcome.reason
    event = {"exit_code": outcome.exit_code, "reason": outcome.reason}
    try:
        ctx.jobs.transition(
            job_id,
            target,
            expect_attempt=attempt,
            sources=[JobState.SCHEDULED, JobState.RUNNING] if from_scheduled
            else [JobState.RUNNING],
            fields=fields,
            event=event,
        )
    except (StaleAttempt, IllegalTransition, JobNotFound) as exc:
        log.warning("job %s: outcome of attempt %d not recorded: %s", job_id, attempt, exc)
        return None
    return target

"""The file-handling step around every runner: shared-storage path mapping and checks,
or a staged scratch run (see :mod:`.shared` and :mod:`.staged`)."""

from __future__ import annotations

import logging

from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.workers.attempt import AttemptSupervisor, Runner
from simfarm.workers.files import scratch
from simfarm.workers.files.shared import prepare_shared
from simfarm.workers.files.staged import StagedRun
from simfarm.workers.outcome import Outcome
from simfarm.workers.results_summary import with_results_summary

log = logging.getLogger(__name__)


def run_with_files(supervisor: AttemptSupervisor, job: Job, runner: Runner) -> Outcome:
    """Run ``runner`` on ``job`` with its project files in place on this node, then
    summarise the results worth drawing (before a staged job's results are sent)."""
    ctx = supervisor.ctx
    runner = with_results_summary(runner)
    files = job.spec.files
    if files is not None and files.mode == "staged":
        scratch.clean_expired(ctx.settings.scratch_root())
        return StagedRun(supervisor, job).run(runner)
    prepared, problem = prepare_shared(ctx, job)
    if problem is not None:
        log.warning("job %s: %s", job.id, problem)
        return Outcome(JobState.FAILED, reason=problem)
    return runner(supervisor, prepared)

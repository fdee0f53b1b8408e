"""Celery tasks run by simfarm workers."""

from __future__ import annotations

import logging

from simfarm.common.logs import job_context
from simfarm.workers.app import RUN_JOB_TASK, app
from simfarm.workers.context import get_context
from simfarm.workers.execution import execute

log = logging.getLogger(__name__)


@app.task(name=RUN_JOB_TASK, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def run_job(job_id: str, attempt: int) -> str | None:
    """Run one attempt of a job on this node. Returns the final state's name."""
    with job_context(job_id):  # every log line of this attempt carries the job id
        state = execute(get_context(), job_id, attempt)
    return state.value if state is not None else None

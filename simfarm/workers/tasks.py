"""The Celery task of simfarm workers, ``simfarm.run_job``: how it is sent and run."""

from __future__ import annotations

import logging

from celery import Celery

from simfarm.common.logs import job_context
from simfarm.common.models import Job, NodeInfo
from simfarm.workers.app import RUN_JOB_TASK
from simfarm.workers.context import WorkerContext
from simfarm.workers.dispatcher import SendTask
from simfarm.workers.execution import execute

log = logging.getLogger(__name__)


def register_tasks(app: Celery, ctx: WorkerContext) -> None:
    """Make ``app``'s worker run ``simfarm.run_job`` with this worker's context."""

    @app.task(name=RUN_JOB_TASK, acks_late=True, ignore_result=True,  # type: ignore[untyped-decorator]
              shared=False)
    def run_job(job_id: str, attempt: int) -> str | None:
        """Run one attempt of a job on this node. Returns the final state's name."""
        with job_context(job_id):  # every log line of this attempt carries the job id
            state = execute(ctx, job_id, attempt)
        return state.value if state is not None else None


def task_sender(app: Celery) -> SendTask:
    """How ``app`` sends the ``run_job`` task for one attempt to the node's own queue."""

    def send_run_job(node: NodeInfo, job: Job, attempt: int) -> None:
        app.send_task(
            RUN_JOB_TASK,
            args=[job.id, attempt],
            queue=node.queue,
            argsrepr=f"(job={job.id}, attempt={attempt}, name={job.spec.name!r})",
        )

    return send_run_job

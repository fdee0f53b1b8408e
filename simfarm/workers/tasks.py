"""The Celery task of simfarm workers, ``simfarm.run_job``: how it is sent and run."""

from __future__ import annotations

import base64
import json
import logging

from celery import Celery
from kombu.utils.uuid import uuid

from simfarm.common.logs import job_context
from simfarm.common.models import NodeInfo
from simfarm.workers.app import RUN_JOB_TASK
from simfarm.workers.context import WorkerContext
from simfarm.workers.dispatcher import TaskMessage
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


def task_message(app: Celery) -> TaskMessage:
    """The ``run_job`` message of one attempt for the node's own queue, exactly as
    ``app.send_task(..., queue=node.queue)`` has kombu's Redis transport push it (Celery
    protocol 2, JSON body, the default exchange): the dispatcher pushes it in the same
    atomic step that schedules the attempt, so a scheduled attempt always has its message
    and none is sent for one that was not scheduled."""

    def message(node: NodeInfo, job_id: str, name: str | None, attempt: int) -> str:
        task_id = uuid()
        task = app.amqp.as_task_v2(
            task_id, RUN_JOB_TASK, args=[job_id, attempt], kwargs={},
            argsrepr=f"(job={job_id}, attempt={attempt}, name={name!r})",
            kwargsrepr="{}", reply_to=app.thread_oid, origin=app.conf.get("origin"),
            ignore_result=True,  # no result backend writes (results are in the job)
        )
        body = json.dumps(task.body).encode()
        properties = {**task.properties, "delivery_mode": 2,
                      "delivery_info": {"exchange": "", "routing_key": node.queue},
                      "priority": 0, "body_encoding": "base64", "delivery_tag": uuid()}
        return json.dumps({"body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
                           "content-type": "application/json", "headers": task.headers,
                           "properties": properties})

    return message

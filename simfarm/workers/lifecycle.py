"""Starts and stops a worker's background parts with the Celery worker process:
the node heartbeat and the dispatcher; on warm shutdown, running jobs are stopped and
handed back to the queue instead of being waited for or lost."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from simfarm.common.models import Job, NodeInfo
from simfarm.workers import orphan_guard
from simfarm.workers.app import RUN_JOB_TASK, app
from simfarm.workers.cluster_service import attach_cluster, detach_cluster
from simfarm.workers.context import get_context
from simfarm.workers.dispatcher import Dispatcher
from simfarm.workers.node_agent import NodeAgent, describe_node, startup_summary

log = logging.getLogger(__name__)

_parts: dict[str, Any] = {}


def send_run_job(node: NodeInfo, job: Job, attempt: int) -> None:
    """Send the ``run_job`` task for one attempt to the node's own queue."""
    app.send_task(
        RUN_JOB_TASK,
        args=[job.id, attempt],
        queue=node.queue,
        argsrepr=f"(job={job.id}, attempt={attempt}, name={job.spec.name!r})",
    )


@worker_ready.connect  # type: ignore[untyped-decorator]
def _on_ready(**_: Any) -> None:
    ctx = get_context()
    guard = orphan_guard.start(  # kills this worker's jobs if it dies without cleanup
        ctx.settings.state_dir / "orphan-guard" / f"{ctx.node_name}-{ctx.boot_id}"
    )
    _parts["guard"] = guard
    attach_cluster(ctx)  # scheduler workers forward jobs instead of running them
    agent = NodeAgent(ctx)
    agent.start()
    dispatcher = Dispatcher(ctx, send_run_job)
    dispatcher.start()
    _parts.update(agent=agent, dispatcher=dispatcher)
    ctx.jobs.nudge_dispatcher()
    for level, line in startup_summary(ctx, describe_node(ctx)):
        log.log(level, "%s", line)


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _on_shutting_down(**_: Any) -> None:
    ctx = get_context()
    ctx.shutting_down.set()
    log.info("node %s: shutting down; running jobs go back to the queue", ctx.node_name)


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _on_shutdown(**_: Any) -> None:
    for name in ("dispatcher", "agent"):
        part = _parts.pop(name, None)
        if part is not None:
            try:
                part.stop()
            except Exception:  # e.g. Redis refusing writes: stop the other parts anyway
                log.exception("node %s: stopping the %s failed", get_context().node_name, name)
    detach_cluster()
    orphan_guard.stop(_parts.pop("guard", None))

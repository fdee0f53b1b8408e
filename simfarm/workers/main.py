"""Starts a Celery worker for this node (``simfarm worker``, ``python -m
simfarm.workers.main``): the one place where a worker's parts are chosen and built from
explicit settings — its context (stores, runners, cluster service, orphan guard), its
Celery app, task and lifecycle."""

from __future__ import annotations

import logging
import os
import sys

from celery import Celery
from kombu.entity import Queue

from simfarm.common.settings import Settings
from simfarm.workers.app import make_celery
from simfarm.workers.cluster_runner import run_on_cluster
from simfarm.workers.cluster_service import ClusterService, build_service
from simfarm.workers.context import RunnerTable, WorkerContext, node_queue
from simfarm.workers.hfss_runner import run_hfss
from simfarm.workers.lifecycle import WorkerLifecycle
from simfarm.workers.local_runner import run_local
from simfarm.workers.orphan_guard import OrphanGuard
from simfarm.workers.tasks import register_tasks, task_message

log = logging.getLogger(__name__)


def worker_argv(settings: Settings, loglevel: str = "INFO") -> list[str]:
    """Arguments for ``celery worker`` that make this process serve its node's queue."""
    pool = "threads"  # prefork does not work on Windows; threads suit subprocess-bound jobs
    return [
        "worker",
        "--queues",
        node_queue(settings.node_name),
        "--hostname",
        f"{settings.node_name}@%h",
        "--pool",
        pool,
        "--concurrency",
        str(settings.worker_concurrency),
        "--loglevel",
        loglevel,
        *(["--task-events"] if settings.task_events else []),
        "--without-gossip",
        "--without-mingle",
    ]


def runner_table(cluster: ClusterService | None) -> RunnerTable:
    """The runners of a worker attached to ``cluster`` — every kind of job is forwarded
    to it — or, without one, of a worker that runs command jobs as local processes and
    HFSS jobs with the local ``ansysedt``."""
    if cluster is not None:
        kinds = ("command", "hfss")
        return RunnerTable(dict.fromkeys(kinds, run_on_cluster), frozenset(kinds))
    return RunnerTable({"command": run_local, "hfss": run_hfss})


def build_context(settings: Settings) -> WorkerContext:
    """Connect to Redis and choose this worker's parts: a scheduler worker forwards every
    job to its cluster, any other runs jobs on this machine. Nothing is started yet."""
    cluster = build_service(settings) if settings.scheduler else None
    return WorkerContext.connected(settings, runner_table(cluster), cluster)


def worker_app(ctx: WorkerContext) -> tuple[Celery, WorkerLifecycle]:
    """The Celery app of this worker: its settings, the ``run_job`` task and the
    lifecycle (heartbeat, dispatcher) bound to ``ctx``."""
    app = make_celery(ctx.settings)
    # The node's queue is read without broker acknowledgements (no unacked index: eight
    # Redis commands less per job). Nothing relies on them: the dispatcher pushes a
    # message only with the attempt it schedules, and an attempt whose message is lost
    # with its worker is handed on by the reaper (lease, node and boot checks), which
    # is also what happens to a message kombu would hand back to this node's own queue.
    queue = Queue(node_queue(ctx.settings.node_name), no_ack=True)  # type: ignore[no-untyped-call]
    app.conf.task_queues = (queue,)
    register_tasks(app, ctx)
    lifecycle = WorkerLifecycle(ctx, task_message(app))
    lifecycle.connect()
    return app, lifecycle


def _check_job_account(settings: Settings) -> None:
    """Exit 1 when ``job_user`` cannot be used; warn when jobs would run as root."""
    from simfarm.workers.job_account import JobAccountError, job_account

    try:
        account = job_account(settings)
    except JobAccountError as exc:
        logging.getLogger(__name__).error("node %s: %s", settings.node_name, exc)
        sys.exit(1)
    if account is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        logging.getLogger(__name__).warning(
            "node %s: jobs run as root; set job_user to an unprivileged account",
            settings.node_name)


def run_worker(settings: Settings, loglevel: str | None = None) -> None:
    """Run the worker in this process until it is stopped; it logs at ``loglevel``
    (default: the ``log_level`` setting), Celery's own lines included."""
    settings.require_redis_url()
    from simfarm.common.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format, settings.node_name)
    _check_job_account(settings)
    # Celery's SIGHUP restart execs sys.executable + sys.argv: make that the command that
    # started this process (with -m, not this module's file, which would put
    # simfarm/workers/ first on sys.path).
    sys.argv = list(sys.orig_argv[1:])

    ctx = build_context(settings)
    app, lifecycle = worker_app(ctx)
    # Celery sets the root logger to its --loglevel: the same level as configured above
    argv = worker_argv(settings, loglevel or settings.log_level)
    if settings.log_format == "json":
        argv.insert(0, "--quiet")  # no start-up banner: stdout/stderr stay JSON lines only
    code: str | int | None = 0
    # kills this worker's jobs if it dies without stopping them
    ctx.orphans = OrphanGuard.start(
        settings.state_dir / "orphan-guard" / f"{ctx.node_name}-{ctx.boot_id}", settings)
    if ctx.cluster is not None:
        ctx.cluster.start()
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        code = exc.code
    finally:
        lifecycle.disconnect()
        if ctx.cluster is not None:
            ctx.cluster.stop()
        ctx.orphans.stop()
    if not ctx.shutting_down.is_set():
        # Celery stopped without being asked (an "unrecoverable" broker error such as a
        # Redis that cannot write its AOF): exit non-zero so the service manager
        # (systemd Restart=on-failure, Windows task) starts the worker again.
        log.error("node %s: the Celery worker stopped on its own; exiting with status 1",
                  settings.node_name)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    run_worker(Settings(), *(sys.argv[1:2]))

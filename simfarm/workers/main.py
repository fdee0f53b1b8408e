"""Starts a Celery worker for this node (``simfarm worker``)."""

from __future__ import annotations

import logging
import os
import sys

from simfarm.common.settings import Settings
from simfarm.workers.context import node_queue


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
        "--task-events",
        "--without-gossip",
        "--without-mingle",
    ]


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run the worker in this process until it is stopped."""
    settings.require_redis_url()
    from simfarm.common.logs import configure_logging
    from simfarm.workers.app import app
    from simfarm.workers.job_account import JobAccountError, job_account

    configure_logging(settings.log_level, settings.log_format, settings.node_name)
    try:
        account = job_account(settings)
    except JobAccountError as exc:
        logging.getLogger(__name__).error("node %s: %s", settings.node_name, exc)
        sys.exit(1)
    if account is None and _is_root():
        logging.getLogger(__name__).warning(
            "node %s: jobs run as root; set job_user to an unprivileged account",
            settings.node_name)

    argv = worker_argv(settings, loglevel)
    if settings.log_format == "json":
        argv.insert(0, "--quiet")  # no start-up banner: stdout/stderr stay JSON lines only
    code: str | int | None = 0
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        code = exc.code
    from simfarm.workers.context import get_context

    if not get_context().shutting_down.is_set():
        # Celery stopped without being asked (an "unrecoverable" broker error such as a
        # Redis that cannot write its AOF): exit non-zero so the service manager
        # (systemd Restart=on-failure, Windows task) starts the worker again.
        logging.getLogger(__name__).error(
            "node %s: the Celery worker stopped on its own; exiting with status 1",
            settings.node_name)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    run_worker(Settings(), *(sys.argv[1:2]))

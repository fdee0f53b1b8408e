"""Runs Celery Flower for simfarm's Celery app (``simfarm flower``).

Flower shows each ``simfarm.run_job`` task with its arguments as
``(job=<job id>, attempt=<n>, name='<job name>')`` (the ``argsrepr`` the dispatcher
sends), in a task list whose columns include them. It starts read-only by default:
cancelling through Flower (revoke) would bypass simfarm's own cancel, which also stops
the solver's process tree and records the state; use ``simfarm cancel`` or the dashboard.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from simfarm.common.settings import Settings
from simfarm.workers.app import make_celery

TASK_COLUMNS = "name,uuid,state,args,received,started,runtime,worker"


def flower_argv(
    settings: Settings,
    *,
    port: int = 5555,
    address: str = "127.0.0.1",
    read_only: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """Arguments of ``celery`` that start Flower with simfarm's defaults (the broker is
    the app's: see :func:`run_flower`)."""
    settings.require_redis_url()
    argv = [
        "flower",
        f"--port={port}",
        f"--address={address}",
        f"--tasks_columns={TASK_COLUMNS}",
        "--natural_time=False",
        "--purge_offline_workers=300",
    ]
    if read_only:
        argv.append("--read_only=True")
    return [*argv, *extra]


def run_flower(settings: Settings, argv: Sequence[str]) -> int:
    """Run Flower (``argv``: from :func:`flower_argv`) on the broker of ``settings`` in
    this process until it is stopped; returns the exit status."""
    if importlib.util.find_spec("flower") is None:
        raise RuntimeError("Celery Flower is not installed: pip install 'simfarm[flower]'")
    sys.argv = ["celery", *argv]  # what Flower's own option parsing reads
    try:
        status = make_celery(settings).start(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return int(status or 0)


if __name__ == "__main__":
    settings = Settings()
    raise SystemExit(run_flower(settings, flower_argv(settings, extra=sys.argv[1:])))

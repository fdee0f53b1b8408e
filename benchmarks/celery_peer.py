"""Raw Celery doing what a simfarm worker does for a command job: the peer of the
end-to-end and latency benchmarks.

A real ``celery worker`` process (started with :func:`worker_argv`) on its own
redis-server runs :func:`run` for each message: the job's argv as a subprocess (no
shell, stdin closed, stdout/stderr piped and read to the end, as simfarm's local runner
does), then one ``RPUSH`` of the finish time so the benchmark can count and time
completions. :func:`start` also records when the task began (for the latency peer).

Celery gets its best configuration for this work, all of it standard: early ack,
prefetch multiplier 4, no task events, no result backend, no gossip/mingle/heartbeat,
and the pool (``threads`` or ``prefork``) chosen by the caller. The broker URL comes
from ``BENCH_BROKER_URL`` so the worker process and the producer agree.

Nothing here is imported by simfarm.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import redis
from celery import Celery

QUEUE = "bench.e2e"
DONE = "bench:done"
STARTED = "bench:started"
_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:1/0")

app = Celery("bench_peer", broker=_URL)
app.conf.update(
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=4,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)
_redis: redis.Redis | None = None


def configure(url: str) -> None:
    """Point this process's recorder at ``url`` (send with a producer of
    ``app.connection_for_write(url)``); the worker gets it through ``BENCH_BROKER_URL``."""
    global _URL, _redis
    _URL = url
    _redis = None


def _record(key: str, value: float) -> None:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(_URL)
    _redis.rpush(key, repr(value))


def _run(argv: list[str]) -> int:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.communicate()
    return proc.returncode


@app.task(name="bench.run")  # type: ignore[untyped-decorator]
def run(argv: list[str]) -> None:
    """Run ``argv`` and record the finish time."""
    _run(argv)
    _record(DONE, time.time())


@app.task(name="bench.start")  # type: ignore[untyped-decorator]
def start(argv: list[str]) -> None:
    """Record the start time, run ``argv``, record the finish time."""
    _record(STARTED, time.time())
    _run(argv)
    _record(DONE, time.time())


def worker_argv(pool: str, concurrency: int) -> list[str]:
    """Command line of the peer's Celery worker."""
    return [sys.executable, "-m", "celery", "-A", "benchmarks.celery_peer", "worker",
            "--pool", pool, "--concurrency", str(concurrency), "--queues", QUEUE,
            "--prefetch-multiplier", "4", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel", "WARNING"]

"""Submit -> running on an idle worker, p50/p99, against raw Celery's enqueue -> task start.

Run: ``PYTHONPATH=. python -m benchmarks.bench_latency [--jobs 200]``

One job at a time goes through the real path: HTTP submit to the gateway, the
dispatcher (woken by the submit), a Celery task on the node's queue, the worker marking
the job running. Latency = the job's ``started_at`` (set by the worker when it moves the
job to running) minus the moment before the client sent the request (same machine,
same clock). The next job is submitted once the previous one finished, so the worker is
idle each time.

The peer, in the same run: ``apply_async`` of :func:`benchmarks.celery_peer.start` (the
task records its start time first, then runs the same ``true``) to a ``celery worker``
with the same concurrency on its own redis-server, thread pool and prefork; latency =
recorded start minus the moment before ``apply_async``. The better pool is the peer.

Targets: p50 < 20 ms, p99 < 100 ms; p50 <= 2x raw Celery's (issue 15).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import redis

from benchmarks import celery_peer
from benchmarks.common import ROOT, farm, percentile, start_redis, summary_ms
from simfarm.client.embedded import free_port
from simfarm.common.states import JobState
from simfarm.common.store import JobStore

CONCURRENCY = 4
WARMUP = 10


def simfarm_latencies(jobs: int) -> list[float]:
    latencies: list[float] = []
    with farm() as the_farm:
        the_farm.start_worker("bench-node", worker_concurrency=CONCURRENCY,
                              node_cores=CONCURRENCY)
        store = JobStore(the_farm.redis())
        with httpx.Client(base_url=the_farm.url, timeout=30) as http:
            for i in range(jobs + WARMUP):
                started = time.time()
                job_id = http.post("/api/v1/jobs", json={"argv": ["true"]}).json()["id"]
                deadline = time.monotonic() + 30
                while store.state_of(job_id) not in (JobState.COMPLETED, JobState.FAILED):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"job {job_id} did not finish in 30 s")
                    time.sleep(0.002)
                if i >= WARMUP:  # the first ones warm up connections and imports
                    job = store.get(job_id)
                    assert job.started_at is not None
                    latencies.append(job.started_at.timestamp() - started)
    return latencies


def celery_latencies(jobs: int, pool: str) -> list[float]:
    root = Path(tempfile.mkdtemp(prefix="simfarm-bench-celery-"))
    port = free_port()
    server = start_redis(root / "redis", port)
    url = f"redis://127.0.0.1:{port}/0"
    celery_peer.configure(url)
    conn = redis.Redis.from_url(url)
    env = dict(os.environ, BENCH_BROKER_URL=url,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(root / "worker.log", "ab")
    worker = subprocess.Popen(celery_peer.worker_argv(pool, CONCURRENCY), env=env, cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    latencies: list[float] = []
    try:
        with celery_peer.app.connection_for_write(url) as connection:
            producer = connection.Producer(serializer="json")
            for i in range(jobs + WARMUP):
                sent = time.time()
                celery_peer.start.apply_async(args=[["true"]], queue=celery_peer.QUEUE,
                                              producer=producer)
                # the first message waits for the worker to boot
                started = conn.blpop([celery_peer.STARTED], timeout=60 if i == 0 else 30)
                if conn.blpop([celery_peer.DONE], timeout=30) is None or started is None:
                    raise SystemExit(f"celery ({pool}): task {i} did not run in 30 s")
                if i >= WARMUP:
                    latencies.append(float(started[1]) - sent)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        log.close()
        conn.close()
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--pools", default="threads,prefork", help="Celery pools to try")
    args = parser.parse_args()
    peers = {pool: celery_latencies(args.jobs, pool) for pool in args.pools.split(",")}
    ours = simfarm_latencies(args.jobs)
    print(f"submit -> running on an idle worker (concurrency {CONCURRENCY}), {args.jobs} jobs:")
    for pool, values in peers.items():
        print(f"  {'celery (' + pool + ')':17} {summary_ms(values)}")
    print(f"  {'simfarm':17} {summary_ms(ours)}")
    best_pool = min(peers, key=lambda p: percentile(peers[p], 50))
    p50, p99 = percentile(ours, 50), percentile(ours, 99)
    ratio = p50 / percentile(peers[best_pool], 50)
    print(f"  simfarm p50 / celery ({best_pool}) p50: {ratio:.2f}x")
    print(f"target p50 < 20 ms: {'met' if p50 < 0.020 else 'NOT met'} ({p50 * 1000:.1f} ms)")
    print(f"target p99 < 100 ms: {'met' if p99 < 0.100 else 'NOT met'} ({p99 * 1000:.1f} ms)")
    print(f"target p50 <= 2x raw Celery enqueue -> start: {'met' if ratio <= 2 else 'NOT met'}"
          f" ({ratio:.2f}x)")


if __name__ == "__main__":
    main()

"""End to end: tiny command jobs through simfarm against raw Celery running the same
subprocess at the same worker concurrency, with 1k and with 100k jobs already queued.

Run: ``PYTHONPATH=. python -m benchmarks.bench_e2e [--jobs 2000] [--depths 1000,100000]``

For each depth ``B`` both sides start with ``N + B`` jobs queued (``N`` measured, ``B``
queued behind them, so at least ``B`` wait during the whole measurement) and one worker
that runs two jobs at a time:

* simfarm: the jobs are submitted through the gateway's batch endpoint, then one worker
  (``worker_concurrency = 2``, ``node_cores = 2``) starts: its dispatcher (a process
  beside it; a thread of it with ``--dispatcher-thread``) places them,
  its Celery consumer runs them (claim, subprocess, outcome), as in production.
* raw Celery (:mod:`benchmarks.celery_peer`): the same ``argv`` as a task, sent with
  ``apply_async`` to a fresh redis-server, then one ``celery worker --concurrency 2``
  starts, once with the thread pool and once with prefork; the better one is the peer.

Measured from the finish times of jobs ``skip..N`` (the first ones pay for start-up):
jobs per second, milliseconds per job, and Redis commands per finished job (``INFO
commandstats`` of that side's redis-server over the same window, less this benchmark's
own polling and ``INFO``; everything else counts: dispatcher, Celery, heartbeats, the
gateway). The Celery task records each finish with one ``RPUSH``, counted in its figure.

The machine is shared: compare the ratios printed in one run, and repeat (``--rounds``).
Targets (issue 15): simfarm >= 0.5x the better Celery pool at each depth; simfarm's rate at
100k >= 0.9x its rate at 1k; <= 30 Redis commands per finished job at every depth.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import redis

from benchmarks import celery_peer
from benchmarks.common import ROOT, farm, start_redis
from simfarm.client.embedded import free_port

ARGV = ["true"]
BATCH = 1000
CONCURRENCY = 2


@dataclass
class Result:
    """One side's figures at one depth."""

    side: str
    depth: int
    rate: float
    commands: float
    failed: int = 0

    @property
    def ms(self) -> float:
        return 1000.0 / self.rate if self.rate else float("nan")


def commands_total(conn: redis.Redis) -> int:
    """Commands the server has run, ``INFO`` itself left out."""
    stats = cast(dict[str, dict[str, int]], conn.info("commandstats"))
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def watch(conn: redis.Redis, count: Callable[[], int], skip: int, total: int,
          timeout_s: float) -> tuple[int, int]:
    """Poll ``count()`` (one Redis command each) until it reaches ``total``; returns
    (jobs finished, Redis commands run by others) between reaching ``skip`` and ``total``."""
    deadline = time.monotonic() + timeout_s
    first: tuple[int, int, int] | None = None
    polls = 0
    while True:
        done = count()
        polls += 1
        if first is None and done >= skip:
            first = (done, commands_total(conn), polls)
        if done >= total:
            assert first is not None
            return done - first[0], commands_total(conn) - first[1] - (polls - first[2])
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done} of {total} jobs finished in {timeout_s:.0f} s")
        time.sleep(0.01)


def steady_rate(times: list[float], skip: int, total: int) -> float:
    """Jobs per second between the ``skip``-th and the ``total``-th finish."""
    ordered = sorted(times)[:total]
    span = ordered[total - 1] - ordered[skip - 1]
    return (total - skip) / span if span > 0 else float("inf")


def run_simfarm(depth: int, jobs: int, skip: int, timeout_s: float,
                dispatcher_process: bool = True) -> Result:
    with farm() as the_farm, httpx.Client(base_url=the_farm.url, timeout=300) as http:
        body = json.dumps({"jobs": [{"argv": ARGV, "name": "e2e"}] * BATCH})
        queued = 0
        while queued < jobs + depth:
            response = http.post("/api/v1/jobs/batch", content=body,
                                 headers={"Content-Type": "application/json"})
            response.raise_for_status()
            queued += len(response.json()["jobs"])
        conn = the_farm.redis()
        finished = f"{the_farm.settings.key_prefix}finished"
        the_farm.start_worker("e2e-node", worker_concurrency=CONCURRENCY, node_cores=CONCURRENCY,
                              dispatcher_process=dispatcher_process)
        done, commands = watch(conn, lambda: int(conn.zcard(finished)), skip, jobs, timeout_s)
        rows = cast(list[tuple[bytes, float]], conn.zrange(finished, 0, -1, withscores=True))
        times = [score for _, score in rows]
        failed = int(conn.zcard(f"{the_farm.settings.key_prefix}state:failed"))
        return Result("simfarm", depth, steady_rate(times, skip, jobs), commands / done, failed)


def run_celery(depth: int, jobs: int, skip: int, pools: list[str],
               timeout_s: float) -> list[Result]:
    root = Path(tempfile.mkdtemp(prefix="simfarm-bench-celery-"))
    port = free_port()
    server = start_redis(root / "redis", port)
    url = f"redis://127.0.0.1:{port}/0"
    conn = redis.Redis.from_url(url)
    celery_peer.configure(url)
    env = dict(os.environ, BENCH_BROKER_URL=url,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    results = []
    try:
        with celery_peer.app.connection_for_write(url) as connection:
            producer = connection.Producer(serializer="json")
            for _ in range(jobs * len(pools) + depth):  # every pool measures its own N
                celery_peer.run.apply_async(args=[ARGV], queue=celery_peer.QUEUE,
                                            producer=producer)
        for pool in pools:
            base = int(conn.llen(celery_peer.DONE))

            def count(base: int = base) -> int:
                return int(conn.llen(celery_peer.DONE)) - base

            log = open(root / f"worker-{pool}.log", "ab")
            worker = subprocess.Popen(celery_peer.worker_argv(pool, CONCURRENCY), env=env,
                                      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
            try:
                done, commands = watch(conn, count, skip, jobs, timeout_s)
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(timeout=10)
                log.close()
            times = [float(t) for t in conn.lrange(celery_peer.DONE, base, -1)]
            results.append(Result(f"celery ({pool})", depth, steady_rate(times, skip, jobs),
                                  commands / done))
    finally:
        conn.close()
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)
    return results


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs measured per side")
    parser.add_argument("--skip", type=int, default=100, help="first finishes not measured")
    parser.add_argument("--depths", default="1000,100000",
                        help="jobs queued behind the measured ones, comma-separated")
    parser.add_argument("--pools", default="threads,prefork", help="Celery pools to try")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per side")
    parser.add_argument("--dispatcher-thread", action="store_true",
                        help="run the dispatcher as a thread of the worker "
                        "(dispatcher_process = false), as before issue 15's last change")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    pools = args.pools.split(",")
    print(f"end to end: {args.jobs} jobs {ARGV} per side, one worker, concurrency "
          f"{CONCURRENCY}, measured from finish {args.skip} to {args.jobs}")
    for round_no in range(1, args.rounds + 1):
        best: dict[int, Result] = {}
        ours: dict[int, Result] = {}
        print(f"round {round_no}:")
        print(f"  {'queued behind':>13}  {'side':18} {'jobs/s':>8} {'ms/job':>8} "
              f"{'Redis cmds/job':>15}")
        for depth in depths:
            rows = run_celery(depth, args.jobs, args.skip, pools, args.timeout)
            rows.append(run_simfarm(depth, args.jobs, args.skip, args.timeout,
                                    dispatcher_process=not args.dispatcher_thread))
            for row in rows:
                note = f"  ({row.failed} failed)" if row.failed else ""
                print(f"  {depth:13,}  {row.side:18} {row.rate:8.1f} {row.ms:8.2f} "
                      f"{row.commands:15.1f}{note}")
            best[depth] = max(rows[:-1], key=lambda r: r.rate)
            ours[depth] = rows[-1]
            print(f"  {'':13}  simfarm / {best[depth].side}: "
                  f"{ours[depth].rate / best[depth].rate:.2f}x")
        for depth in depths:
            ratio = ours[depth].rate / best[depth].rate
            print(f"target e2e >= 0.5x raw Celery at {depth:,} queued: {verdict(ratio >= 0.5)}"
                  f" ({ratio:.2f}x)")
        if len(depths) > 1:
            flat = ours[depths[-1]].rate / ours[depths[0]].rate
            print(f"target simfarm at {depths[-1]:,} / at {depths[0]:,} >= 0.9: "
                  f"{verdict(flat >= 0.9)} ({flat:.2f})")
        worst = max(r.commands for r in ours.values())
        print(f"target <= 30 Redis commands per finished job at every depth: "
              f"{verdict(worst <= 30)} ({', '.join(f'{r.commands:.0f}' for r in ours.values())})")


if __name__ == "__main__":
    main()

"""Gateway operations and dispatch with 1,000 and with 100,000 queued jobs, and Redis
memory per job.

Run: ``PYTHONPATH=. python -m benchmarks.bench_scale [--jobs 100000]``

The queue is filled through the batch endpoint while one worker (concurrency 2) runs
jobs from it: each queued job sleeps 0.2 s, so the worker can finish at most 10 a second
and the queue stays deep. At 1k and at 100k queued jobs the same operations are timed
over real HTTP (median of 200 each): submit one job, get one job, cancel a pending job
(each cancelled once, taken from the end of the queue, which the worker will not reach
meanwhile), list the first page of all jobs, the first page of the pending queue, and a
page deep in the pending queue (by cursor). "Flat" means the 100k time is close to the
1k time (ratio ~1). During the same window the jobs the worker finished per second and
the Redis commands run per finished job (``INFO commandstats``, everything on the
server: gateway, dispatcher, Celery) are printed: a dispatcher whose rounds grow with
the queue shows here as fewer jobs and more commands at 100k.
Memory per queued job is Redis ``used_memory`` growth divided by the jobs added (job
hash, state/owner/all-jobs indexes, per-job event stream, global event stream entry;
the audit stream is measured apart). Target: <= 2 KiB.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import httpx
import redis

from benchmarks.bench_e2e import commands_total
from benchmarks.common import farm, median

SPEC = {"argv": ["sleep", "0.2"], "name": "queued", "priority": 5}
BATCH = 1000


def _fill(http: httpx.Client, count: int) -> list[str]:
    ids: list[str] = []
    body = json.dumps({"jobs": [SPEC] * BATCH})
    while len(ids) < count:
        response = http.post("/api/v1/jobs/batch", content=body,
                             headers={"Content-Type": "application/json"})
        response.raise_for_status()
        ids.extend(j["id"] for j in response.json()["jobs"])
    return ids


def _ops(http: httpx.Client, ids: list[str], repeat: int,
         cancelled: set[str]) -> dict[str, float]:
    pending = http.get("/api/v1/jobs", params={"state": "pending", "limit": 1000}).json()
    deep_cursor = pending["next_cursor"]
    # Cancel each victim once, from the last half of the queue: the worker, taking jobs
    # from the front, cannot start one of them meanwhile.
    tail = [i for i in ids[len(ids) // 2 :] if i not in cancelled]
    victims = random.sample(tail, repeat)
    cancelled.update(victims)
    samples: dict[str, list[float]] = {}

    def time_it(name: str, call: Callable[[], httpx.Response], ok: int = 200) -> None:
        start = time.perf_counter()
        response = call()
        samples.setdefault(name, []).append(time.perf_counter() - start)
        if response.status_code != ok:
            raise SystemExit(f"{name}: {response.status_code} {response.text[:200]}")

    for i in range(repeat):
        time_it("submit", lambda: http.post("/api/v1/jobs", json=SPEC), 201)
        time_it("get", lambda i=i: http.get(f"/api/v1/jobs/{victims[i]}"))
        time_it("cancel", lambda i=i: http.post(f"/api/v1/jobs/{victims[i]}/cancel"))
        time_it("list page (all, newest)", lambda: http.get("/api/v1/jobs", params={"limit": 50}))
        time_it("list page (pending queue)",
                lambda: http.get("/api/v1/jobs", params={"state": "pending", "limit": 50}))
        time_it("list page (pending, deep cursor)",
                lambda: http.get("/api/v1/jobs", params={"state": "pending", "limit": 50,
                                                         "cursor": deep_cursor}))
    return {name: median(values) for name, values in samples.items()}


def _measured(connection: redis.Redis, finished_key: str, http: httpx.Client, ids: list[str],
              repeat: int, cancelled: set[str]) -> tuple[dict[str, float], float, float]:
    """(median per operation, jobs finished per second, Redis commands per finished job)
    over one window of gateway operations while the worker runs."""
    done0, commands0, t0 = connection.zcard(finished_key), commands_total(connection), \
        time.perf_counter()
    medians = _ops(http, ids, repeat, cancelled)
    # leave the dispatcher a few more seconds alone with the queue
    time.sleep(5)
    finished = int(connection.zcard(finished_key)) - int(done0) - repeat  # cancels finish too
    commands = commands_total(connection) - commands0
    seconds = time.perf_counter() - t0
    return medians, max(0, finished) / seconds, commands / max(1, finished)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with farm() as the_farm, httpx.Client(base_url=the_farm.url, timeout=120) as http:
        connection = the_farm.redis()
        finished_key = f"{the_farm.settings.key_prefix}finished"
        cancelled: set[str] = set()
        ids = _fill(http, 1000)
        the_farm.start_worker("scale-node", worker_concurrency=2, node_cores=2)
        small, small_rate, small_cmds = _measured(connection, finished_key, http, ids,
                                                  args.repeat, cancelled)
        connection.execute_command("MEMORY", "PURGE")
        before = int(connection.info("memory")["used_memory"])
        audit_key = f"{the_farm.settings.key_prefix}audit"
        audit_before = int(connection.memory_usage(audit_key, samples=0) or 0)
        started = time.perf_counter()
        added = _fill(http, args.jobs - len(ids))
        fill_s = time.perf_counter() - started
        connection.execute_command("MEMORY", "PURGE")
        after = int(connection.info("memory")["used_memory"])
        audit_after = int(connection.memory_usage(audit_key, samples=0) or 0)
        ids += added
        queued = connection.zcard(f"{the_farm.settings.key_prefix}state:pending")
        large, large_rate, large_cmds = _measured(connection, finished_key, http, ids,
                                                  args.repeat, cancelled)
    per_job = (after - before - (audit_after - audit_before)) / len(added)
    print(f"{queued} jobs queued ({len(added)} added through the batch endpoint in "
          f"{fill_s:.1f} s, {len(added) / fill_s:.0f} jobs/s)")
    big = f"at {args.jobs // 1000}k"
    print(f"{'operation (median of ' + str(args.repeat) + ')':38} {'at 1k':>9} {big:>9}"
          f" {'ratio':>6}")
    for name in small:
        print(f"  {name:36} {small[name] * 1000:7.2f}ms {large[name] * 1000:7.2f}ms"
              f" {large[name] / small[name]:6.2f}")
    print(f"  {'worker: jobs finished per second':36} {small_rate:9.1f} {large_rate:9.1f}"
          f" {large_rate / small_rate if small_rate else float('nan'):6.2f}")
    print(f"  {'Redis commands per finished job':36} {small_cmds:9.0f} {large_cmds:9.0f}"
          f" {large_cmds / small_cmds if small_cmds else float('nan'):6.2f}")
    print(f"Redis memory per queued job: {per_job:.0f} bytes "
          f"({'OK' if per_job <= 2048 else 'MISSED'}: target <= 2048); audit stream "
          f"{(audit_after - audit_before) / max(1, len(added)):.0f} bytes per batched job")


if __name__ == "__main__":
    main()

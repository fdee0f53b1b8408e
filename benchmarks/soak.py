"""Soak run (not in CI): 10,000 short jobs through 3 workers while faults are injected.

Run: ``PYTHONPATH=. python -m benchmarks.soak [--jobs 10000] [--workers 3]``

A private farm (redis-server with AOF, the gateway, three workers reaching Redis
through a TCP proxy) takes the jobs in batches while, in turn, the soak kills a worker
with SIGKILL (and starts it again), kills Redis with SIGKILL and restarts it, cuts the
workers off Redis for 10 s, and restarts the gateway. Every job records each run in a
file (start, ticks, end); at the end it prints:

* submitted: jobs the gateway acknowledged (201);
* completed / failed (with reasons) / cancelled;
* lost: acknowledged jobs missing or not finished at the end (must be 0);
* duplicated: jobs that ran twice at the same time or ran to the end twice (must be 0).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import signal
import sys
import threading
import time
from pathlib import Path

import httpx

from benchmarks.common import Farm, farm, start_redis
from simfarm.common.store import JobStore
from tests.chaos import RECORDER, TcpProxy


def duplicated(record: Path) -> bool:
    """Whether the runs in one job's record overlap or more than one ran to its end."""
    runs: dict[str, list[float]] = {}
    ended = 0
    for line in record.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        span = runs.setdefault(parts[0], [float(parts[2]), float(parts[2])])
        span[1] = max(span[1], float(parts[2]))
        ended += parts[1] == "end"
    spans = sorted(runs.values())
    return ended > 1 or any(a[1] >= b[0] for a, b in itertools.pairwise(spans))


class Soak:
    def __init__(self, the_farm: Farm, proxy: TcpProxy, records: Path, workers: int) -> None:
        self.farm = the_farm
        self.proxy = proxy
        self.records = records
        self.workers = [f"soak-{i}" for i in range(workers)]
        self.accepted: list[str] = []
        self.refused = collections.Counter[str]()
        self.faults: list[str] = []
        self.stop = threading.Event()

    def start_worker(self, name: str) -> None:
        self.farm.start_worker(name, redis_url=self.proxy.url, worker_concurrency=4,
                               node_cores=4, node_labels={"pool": "soak"})

    def submit_all(self, total: int, batch: int, seconds: float, rate: float) -> None:
        spec = {"argv": [sys.executable, "-c", RECORDER, str(self.records), str(seconds)],
                "retries": 3, "resources": {"labels": {"pool": "soak"}}}
        body = json.dumps({"jobs": [spec] * batch})
        with httpx.Client(base_url=self.farm.url, timeout=60) as http:
            while len(self.accepted) < total:
                try:
                    response = http.post("/api/v1/jobs/batch", content=body,
                                         headers={"Content-Type": "application/json"})
                except httpx.TransportError as exc:
                    self.refused[f"transport: {type(exc).__name__}"] += 1
                    time.sleep(0.5)
                    continue
                if response.status_code == 201:
                    self.accepted.extend(j["id"] for j in response.json()["jobs"])
                else:
                    self.refused[f"{response.status_code} {response.json().get('error')}"] += 1
                    time.sleep(0.5)
                time.sleep(batch / rate)  # a steady stream while faults come and go

    def inject(self, redis_dir: Path) -> None:
        faults = itertools.cycle(["kill-worker", "kill-redis", "cut-redis", "restart-gateway"])
        while not self.stop.wait(8.0):
            fault = next(faults)
            self.faults.append(f"{time.strftime('%H:%M:%S')} {fault}")
            print(f"  fault: {fault}", flush=True)
            if fault == "kill-worker":
                victim = self.workers[len(self.faults) % len(self.workers)]
                self.farm.stop(f"worker-{victim}", kill=True)
                time.sleep(2.0)
                self.start_worker(victim)
            elif fault == "kill-redis":
                self.farm.redis_proc.send_signal(signal.SIGKILL)
                self.farm.redis_proc.wait()
                time.sleep(1.0)
                self.farm.redis_proc = start_redis(redis_dir, self.farm.redis_port,
                                                   "--appendfsync", "always")
            elif fault == "cut-redis":
                with self.proxy.outage(10.0):
                    pass
            else:
                self.farm.stop("gateway", kill=True)
                time.sleep(1.0)
                self.farm.start_gateway()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rate", type=float, default=40.0, help="jobs submitted per second")
    parser.add_argument("--seconds", type=float, default=0.2, help="each job's run time")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after (s)")
    args = parser.parse_args()
    with farm(heartbeat_s=0.5, heartbeat_ttl_s=4.0, kill_grace_s=1.0) as the_farm:
        # Redis restarted with fsync always: an acknowledged job survives a kill -9.
        the_farm.redis_proc.send_signal(signal.SIGTERM)
        the_farm.redis_proc.wait()
        redis_dir = the_farm.root / "redis"
        the_farm.redis_proc = start_redis(redis_dir, the_farm.redis_port, "--appendfsync",
                                          "always")
        proxy = TcpProxy(the_farm.redis_port)
        records = the_farm.root / "records"
        records.mkdir()
        soak = Soak(the_farm, proxy, records, args.workers)
        for name in soak.workers:
            soak.start_worker(name)
        injector = threading.Thread(target=soak.inject, args=(redis_dir,), daemon=True)
        started = time.monotonic()
        injector.start()
        soak.submit_all(args.jobs, args.batch, args.seconds, args.rate)
        print(f"  {len(soak.accepted)} jobs accepted in {time.monotonic() - started:.0f} s; "
              "waiting for them to end", flush=True)
        store = JobStore(the_farm.redis())
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            try:
                states = collections.Counter(j.state.value for j in
                                             store.get_many(soak.accepted))
            except Exception:  # Redis restarting under the injector
                time.sleep(1)
                continue
            if sum(states[s] for s in ("completed", "failed", "cancelled")) == len(soak.accepted):
                break
            time.sleep(2)
        soak.stop.set()
        injector.join(timeout=60)
        jobs = {j.id: j for j in store.get_many(soak.accepted)}
        proxy.close()
    final = collections.Counter(j.state.value for j in jobs.values())
    reasons = collections.Counter(j.reason or j.error or "?" for j in jobs.values()
                                  if j.state.value == "failed")
    lost = [i for i in soak.accepted if i not in jobs or not jobs[i].final]
    dup = [i for i in soak.accepted if (records / i).exists() and duplicated(records / i)]
    kinds = collections.Counter(f.split()[1] for f in soak.faults)
    print(f"soak: {len(soak.faults)} faults injected {dict(kinds)}")
    print(f"  submitted : {len(soak.accepted)} (refused while faulty: {dict(soak.refused)})")
    print(f"  completed : {final['completed']}")
    print(f"  failed    : {final['failed']} {dict(reasons)}")
    print(f"  cancelled : {final['cancelled']}")
    print(f"  lost      : {len(lost)} (must be 0)")
    print(f"  duplicated: {len(dup)} (must be 0)")
    if lost or dup:
        print(f"  lost ids: {lost[:10]}  duplicated ids: {dup[:10]}")
        sys.exit(1)


if __name__ == "__main__":
    main()

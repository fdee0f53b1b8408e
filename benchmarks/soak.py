"""Soak run (not in CI): 10,000 short jobs through 3 workers while faults are injected.

Run: ``PYTHONPATH=. python -m benchmarks.soak [--jobs 10000] [--workers 3] [--redis single]``

``--redis single`` (the default): a private farm (redis-server with AOF, the gateway,
three workers reaching Redis through a TCP proxy) takes the jobs in batches while, in
turn, the soak kills a worker with SIGKILL (and starts it again), kills Redis with
SIGKILL and restarts it, cuts the workers off Redis for 10 s, and restarts the gateway.

``--redis sentinel``: the farm runs on a primary, a replica and three sentinels
(``redis+sentinel://``, submits acknowledged once the replica has them); the faults are
a worker SIGKILL, a **Redis failover** (the primary SIGKILLed, the sentinels promote the
replica, the old primary comes back and the sentinels make it the new one's replica)
and a gateway SIGKILL + restart. Jobs are submitted one by one with an Idempotency-Key
and retried until acknowledged, as a client should while a failover makes it wait.

Every job records each run in a file (start, ticks, end); at the end it prints:

* submitted: jobs the gateway acknowledged (201);
* completed / failed (with reasons) / cancelled;
* lost: acknowledged jobs missing or not finished at the end (must be 0);
* duplicated: jobs that ran twice at the same time or ran to the end twice (must be 0).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Farm, farm, start_redis
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore
from tests.chaos import RECORDER, TcpProxy, runs_of
from tests.helpers import free_port, wait_until
from tests.sentinel import ReplicatedRedis


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


@contextlib.contextmanager
def sentinel_farm(keep: threading.Event, **values: Any) -> Iterator[tuple[Farm, ReplicatedRedis]]:
    """A private farm on a primary, a replica and three sentinels (gateway, no workers);
    its folder (run records, logs, Redis data) is kept when ``keep`` is set at the end."""
    root = Path(tempfile.mkdtemp(prefix="simfarm-soak-"))
    # Sentinel's own INFO cadence (10 s), as deployed: the rejoin times it prints are real.
    replicated = ReplicatedRedis(root / "redis", info_period_ms=None)
    primary = replicated.primary()
    assert primary.proc is not None
    settings = Settings(redis_url=replicated.url, state_dir=root / "state",
                        gateway_port=free_port(), node_name="soak-gateway", **values)
    the_farm = Farm(root, settings, primary.port, primary.proc)
    try:
        the_farm.start_gateway()
        yield the_farm, replicated
    finally:
        for name in list(the_farm.procs):
            the_farm.stop(name)
        replicated.stop()
        if keep.is_set():
            print(f"  kept for analysis: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


class Soak:
    def __init__(self, the_farm: Farm, proxy: TcpProxy | None, records: Path, workers: int,
                 replicated: ReplicatedRedis | None = None) -> None:
        self.farm = the_farm
        self.proxy = proxy
        self.replicated = replicated
        self.failovers: list[tuple[float, float]] = []  # (s to a new primary, s to rejoin)
        self.records = records
        self.workers = [f"soak-{i}" for i in range(workers)]
        self.accepted: list[str] = []
        self.refused = collections.Counter[str]()
        self.faults: list[str] = []
        self.fault_times: list[tuple[float, str]] = []  # (time.time() at its start, kind)
        self.only: set[str] | None = None  # --faults: inject only these kinds
        self.stop = threading.Event()
        self.elapsed = 0.0
        self.t0 = time.time()  # wall clock at the start of the run (for timelines)

    def start_worker(self, name: str) -> None:
        through = {"redis_url": self.proxy.url} if self.proxy is not None else {}
        self.farm.start_worker(name, worker_concurrency=4, node_cores=4,
                               node_labels={"pool": "soak"}, **through)

    @staticmethod
    def spec(records: Path, seconds: float) -> dict[str, Any]:
        return {"argv": [sys.executable, "-c", RECORDER, str(records), str(seconds)],
                "retries": 3, "resources": {"labels": {"pool": "soak"}}}

    def submit_all(self, total: int, batch: int, seconds: float, rate: float) -> None:
        body = json.dumps({"jobs": [self.spec(self.records, seconds)] * batch})
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

    def submit_keyed(self, total: int, seconds: float, rate: float, threads: int = 4) -> None:
        """One job per request with an Idempotency-Key, each retried until acknowledged
        (201, or 200 for the replay of a retried one) through 503s and cut connections."""
        spec = self.spec(self.records, seconds)
        numbers = iter(range(total))
        lock = threading.Lock()
        acked: dict[int, str] = {}

        def loop() -> None:
            with httpx.Client(base_url=self.farm.url, timeout=60) as http:
                while True:
                    with lock:
                        n = next(numbers, None)
                    if n is None:
                        return
                    while True:
                        try:
                            response = http.post("/api/v1/jobs", json=spec,
                                                 headers={"Idempotency-Key": f"soak-{n}"})
                        except httpx.TransportError as exc:
                            self.refused[f"transport: {type(exc).__name__}"] += 1
                            time.sleep(0.5)
                            continue
                        if response.status_code in (200, 201):
                            with lock:
                                acked[n] = response.json()["id"]
                            break
                        self.refused[f"{response.status_code} "
                                     f"{response.json().get('error')}"] += 1
                        time.sleep(0.5)
                    time.sleep(threads / rate)

        pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        self.accepted = [acked[n] for n in sorted(acked)]

    def fail_over(self) -> None:
        """SIGKILL the primary, wait for the sentinels' failover, start the old primary
        again and wait until it is the new one's replica."""
        assert self.replicated is not None
        started = time.monotonic()
        old = self.replicated.kill_primary()
        new = self.replicated.wait_failover(old, 60)
        promoted = time.monotonic() - started
        self.replicated.restart(old)
        wait_until(lambda: self.replicated is not None and
                   self.replicated.replicas_of(new) == 1, 120, "the old primary to rejoin")
        self.failovers.append((promoted, time.monotonic() - started))
        print(f"    new primary after {promoted:.1f} s, old one back as its replica after "
              f"{self.failovers[-1][1]:.1f} s", flush=True)

    def inject(self, redis_dir: Path) -> None:
        cycle = (["kill-worker", "failover-redis", "restart-gateway"]
                 if self.replicated is not None else
                 ["kill-worker", "kill-redis", "cut-redis", "restart-gateway"])
        faults = itertools.cycle([f for f in cycle if self.only is None or f in self.only])
        while not self.stop.wait(8.0):
            fault = next(faults)
            self.faults.append(f"{time.strftime('%H:%M:%S')} {fault}")
            self.fault_times.append((time.time(), fault))
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
            elif fault == "failover-redis":
                self.fail_over()
            elif fault == "cut-redis":
                assert self.proxy is not None
                with self.proxy.outage(10.0):
                    pass
            else:
                self.farm.stop("gateway", kill=True)
                time.sleep(1.0)
                self.farm.start_gateway()


def explain(soak: Soak, record: Path) -> tuple[str, str, float]:
    """What happened to a duplicated job: overlapping runs or two runs to the end, the
    last fault before its first run ended (the one that made it run again) and how long
    before that end."""
    runs = runs_of(record.parent, record.name)
    overlap = any(a.last >= b.start for a, b in itertools.pairwise(runs))
    kind = "overlapping runs" if overlap else "ran to the end twice"
    before = [f for f in soak.fault_times if f[0] <= runs[0].last]
    if not before:
        return kind, "no fault", 0.0
    return kind, before[-1][1], runs[0].last - before[-1][0]


def timeline(soak: Soak, store: JobStore, record: Path, t0: float) -> list[str]:
    """A duplicated job's runs (from its record), its state changes (from its events, as
    the store has them at the end) and the faults around them, in order, in seconds
    since the soak started."""
    rows = [(r.start, f"run {r.pid} start") for r in runs_of(record.parent, record.name)]
    rows += [(r.last, f"run {r.pid} {'end' if r.ended else 'last tick'}")
             for r in runs_of(record.parent, record.name)]
    with contextlib.suppress(Exception):
        for event in store.events(record.name):
            if event.type == "state":
                d = event.data
                rows.append((event.ts, f"{d.get('from', '')}->{d.get('to', d.get('state'))} "
                             f"attempt {d.get('attempt')} {d.get('node', '')} "
                             f"{d.get('reason') or ''}".rstrip()))
    first, last = min(r[0] for r in rows), max(r[0] for r in rows)
    rows += [(t, f"fault {kind}") for t, kind in soak.fault_times
             if first - 20 <= t <= last + 5]
    return [f"{t - t0:8.3f} {what}" for t, what in sorted(rows)]


def wait_final(store: JobStore, ids: list[str], deadline: float) -> None:
    """Until every job is final (or the deadline)."""
    while time.monotonic() < deadline:
        try:
            states = collections.Counter(j.state.value for j in store.get_many(ids))
        except Exception:  # Redis restarting or failing over under the injector
            time.sleep(1)
            continue
        if sum(states[s] for s in ("completed", "failed", "cancelled")) == len(ids):
            return
        time.sleep(2)


def run(soak: Soak, args: argparse.Namespace, redis_dir: Path) -> dict[str, Any]:
    """Start the workers and the faults, submit, wait; the jobs as stored at the end."""
    for name in soak.workers:
        soak.start_worker(name)
    injector = threading.Thread(target=soak.inject, args=(redis_dir,), daemon=True)
    started = time.monotonic()
    soak.t0 = time.time()
    injector.start()
    if soak.replicated is not None:
        soak.submit_keyed(args.jobs, args.seconds, args.rate)
    else:
        soak.submit_all(args.jobs, args.batch, args.seconds, args.rate)
    print(f"  {len(soak.accepted)} jobs accepted in {time.monotonic() - started:.0f} s; "
          "waiting for them to end", flush=True)
    store = JobStore(soak.farm.redis())
    wait_final(store, soak.accepted, started + args.timeout)
    soak.stop.set()
    injector.join(timeout=180)
    wait_final(store, soak.accepted, time.monotonic() + 60)  # a last fault's retries
    soak.elapsed = time.monotonic() - started
    return {j.id: j for j in store.get_many(soak.accepted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rate", type=float, default=40.0, help="jobs submitted per second")
    parser.add_argument("--seconds", type=float, default=0.2, help="each job's run time")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after (s)")
    parser.add_argument("--redis", choices=("single", "sentinel"), default="single",
                        help="one Redis (killed, cut off) or a primary, a replica and three "
                        "sentinels (failed over)")
    parser.add_argument("--log-level", default="WARNING", help="workers' and gateway's")
    parser.add_argument("--faults", default="",
                        help="inject only these faults (comma-separated kinds), e.g. "
                        "failover-redis")
    args = parser.parse_args()
    timings = {"heartbeat_s": 0.5, "heartbeat_ttl_s": 4.0, "kill_grace_s": 1.0,
               "log_level": args.log_level}
    keep = threading.Event()  # a figure not met: keep the folder (sentinel farm)
    with contextlib.ExitStack() as stack:
        if args.redis == "sentinel":
            the_farm, replicated = stack.enter_context(sentinel_farm(keep, **timings))
            records = the_farm.root / "records"
            records.mkdir()
            soak = Soak(the_farm, None, records, args.workers, replicated)
            redis_dir = the_farm.root / "redis"
        else:
            the_farm = stack.enter_context(farm(**timings))
            # Redis restarted with fsync always: an acknowledged job survives a kill -9.
            the_farm.redis_proc.send_signal(signal.SIGTERM)
            the_farm.redis_proc.wait()
            redis_dir = the_farm.root / "redis"
            the_farm.redis_proc = start_redis(redis_dir, the_farm.redis_port,
                                              "--appendfsync", "always")
            proxy = TcpProxy(the_farm.redis_port)
            stack.callback(proxy.close)
            records = the_farm.root / "records"
            records.mkdir()
            soak = Soak(the_farm, proxy, records, args.workers)
        soak.only = set(args.faults.split(",")) if args.faults else None
        jobs = run(soak, args, redis_dir)
        # Read the run records before the farm's folder (which holds them) is removed.
        dup = [i for i in soak.accepted if (records / i).exists() and duplicated(records / i)]
        explained = {i: explain(soak, records / i) for i in dup}
        why = collections.Counter(f"{kind}, first run ended after {fault}"
                                  for kind, fault, _ in
                                  explained.values())
        details = [f"{i}: {kind}, first run ended {ago:.1f} s after {fault}"
                   for i, (kind, fault, ago) in list(explained.items())[:10]]
        never_ran = [i for i in soak.accepted if i in jobs and jobs[i].state.value == "completed"
                     and not (records / i).exists()]
        store = JobStore(the_farm.redis())
        timelines = {i: timeline(soak, store, records / i, soak.t0) for i in dup[:10]}
        if dup or never_ran or any(i not in jobs or not jobs[i].final for i in soak.accepted):
            keep.set()
    final = collections.Counter(j.state.value for j in jobs.values())
    reasons = collections.Counter(j.reason or j.error or "?" for j in jobs.values()
                                  if j.state.value == "failed")
    lost = [i for i in soak.accepted if i not in jobs or not jobs[i].final] + never_ran
    kinds = collections.Counter(f.split()[1] for f in soak.faults)
    print(f"soak: {len(soak.faults)} faults injected {dict(kinds)} in {soak.elapsed:.0f} s")
    for promoted, rejoined in soak.failovers:
        print(f"  failover  : new primary after {promoted:.1f} s, old primary its replica "
              f"after {rejoined:.1f} s")
    print(f"  submitted : {len(soak.accepted)} (refused while faulty: {dict(soak.refused)})")
    print(f"  completed : {final['completed']}")
    print(f"  failed    : {final['failed']} {dict(reasons)}")
    print(f"  cancelled : {final['cancelled']}")
    print(f"  lost      : {len(lost)} (must be 0)")
    print(f"  duplicated: {len(dup)} (must be 0) {dict(why)}")
    if lost or dup:
        print(f"  lost ids: {lost[:10]}")
        for line in details:
            print(f"  duplicated {line}")
        for job_id, rows in timelines.items():
            print(f"  {job_id} (s since the start):")
            for row in rows:
                print(f"    {row}")
        sys.exit(1)


if __name__ == "__main__":
    main()

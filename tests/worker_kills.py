"""The worker-kill chaos run (issue 19): a private farm of a Redis (AOF, fsync always),
the gateway and three workers runs short recorded jobs while a worker is SIGKILLed every
few seconds (and started again a second later) and Redis is SIGKILLed once (and
restarted). Every job records its runs (tests/chaos.py's RECORDER), so the run can tell:

* lost: acknowledged jobs not finished at the end;
* overlapping: runs of one job at the same time;
* ended twice: jobs whose program ran to its end more than once;
* completed marked failed: jobs recorded ``failed`` whose one run had ended (a job that
  finished in the moments after its worker died, not recorded as it ended);
* usage miscounted: jobs whose usage records are not exactly one per attempt placed,
  and whether the usage roll-ups count as many attempts as all the jobs' records
  (docs/operations.md#usage-accounting).

Used at a small size by tests/test_worker_kills.py and at full size (300 jobs, a kill every
10 s) by ``python -m benchmarks.chaos_kills``.
"""

from __future__ import annotations

import collections
import itertools
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.usage import UsageStore
from simfarm.common.usage import combine, day_of
from tests.chaos import RECORDER, runs_of
from tests.conftest import RedisServer
from tests.helpers import free_port, start_gateway, start_worker, stop_process, wait_for

FINAL = ("completed", "failed", "cancelled")


@dataclass
class KillReport:
    """What one chaos run saw."""

    submitted: int = 0
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    worker_kills: int = 0
    redis_kills: int = 0
    lost: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)
    ended_twice: list[str] = field(default_factory=list)
    completed_marked_failed: list[str] = field(default_factory=list)
    recorded_by_guard: int = 0
    usage_miscounted: list[str] = field(default_factory=list)
    usage_attempts: tuple[int, int] = (0, 0)  # (the roll-ups', the jobs' records)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"  faults    : {self.worker_kills} worker SIGKILLs, {self.redis_kills} Redis SIGKILL",
            f"  submitted : {self.submitted} in {self.seconds:.0f} s",
            f"  states    : {dict(self.states)}",
            f"  failed    : {dict(self.reasons)}",
            f"  recorded by an orphan guard after their worker died: {self.recorded_by_guard}",
            f"  lost      : {len(self.lost)} (must be 0) {self.lost[:5]}",
            f"  overlapping runs: {len(self.overlapping)} (must be 0) {self.overlapping[:5]}",
            f"  ran to the end twice: {len(self.ended_twice)} (must be 0) "
            f"{self.ended_twice[:5]}",
            f"  completed but marked failed: {len(self.completed_marked_failed)} (must be 0) "
            f"{self.completed_marked_failed[:5]}",
            f"  usage not one record per attempt: {len(self.usage_miscounted)} (must be 0) "
            f"{self.usage_miscounted[:5]}; attempts in the roll-ups "
            f"{self.usage_attempts[0]} vs {self.usage_attempts[1]} recorded with the jobs",
        ]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.overlapping or self.ended_twice
                    or self.completed_marked_failed or self.usage_miscounted
                    or self.usage_attempts[0] != self.usage_attempts[1])


class KillFarm:
    """The farm of one run and its fault injector."""

    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        self.server = RedisServer(root / "redis", extra_args=("--appendfsync", "always"))
        self.settings = Settings(redis_url=self.server.url, state_dir=root / "state",
                                 gateway_port=free_port(), node_name="kills-gateway",
                                 heartbeat_s=0.3, heartbeat_ttl_s=3.0, kill_grace_s=1.0)
        self.records = root / "records"
        self.names = [f"kill-{i}" for i in range(workers)]
        self.procs: dict[str, Any] = {}
        self.gateway: Any = None
        self.stop = threading.Event()
        self.report = KillReport()

    def start(self) -> None:
        self.records.mkdir(parents=True, exist_ok=True)
        self.server.start()
        self.gateway = start_gateway(self.settings, self.root / "gateway.log")
        for name in self.names:
            self.start_worker(name)
        nodes = NodeStore(redis.Redis.from_url(self.server.url))
        for name in self.names:
            wait_for(lambda n=name: nodes.is_alive(n), bool, 60, f"worker {name}")

    def start_worker(self, name: str) -> None:
        node = self.settings.model_copy(update={
            "node_name": name, "node_cores": 2, "worker_concurrency": 2,
            "node_labels": {"pool": "kills"}})
        self.procs[name] = start_worker(node, self.root / f"{name}.log")

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs.values():
            stop_process(proc)
        if self.gateway is not None:
            stop_process(self.gateway)
        self.server.stop()

    def inject(self, every_s: float, redis_kill_at: int) -> None:
        """SIGKILL a worker every ``every_s`` (started again a second later); Redis is
        SIGKILLed (and restarted) instead at fault number ``redis_kill_at``."""
        victims = itertools.cycle(self.names)
        for count in itertools.count(1):
            if self.stop.wait(every_s):
                return
            if count == redis_kill_at:
                self.server.stop(kill=True)
                self.report.redis_kills += 1
                time.sleep(1.0)
                self.server.start()
                continue
            name = next(victims)
            self.procs[name].kill()
            self.procs[name].wait()
            self.report.worker_kills += 1
            if self.stop.wait(1.0):
                return
            self.start_worker(name)


#: RECORDER that exits the moment it wrote its end line (no interpreter teardown, which
#: under load takes long enough for the orphan guard's stop to land in it: a program that
#: did its work but had not exited is one the guard cannot know finished)
FAST_EXIT_RECORDER = RECORDER + "log.close()\nos._exit(0)\n"


def kill_run(root: Path, *, jobs: int, retries: int, kill_every_s: float,
             job_seconds: float = 0.5, workers: int = 3, timeout_s: float = 600,
             fast_exit: bool = False, min_worker_kills: int = 0) -> KillReport:
    """One chaos run; returns what it saw (the farm is stopped before it returns).
    ``fast_exit``: the jobs exit as soon as they wrote their end (see
    :data:`FAST_EXIT_RECORDER`); ``min_worker_kills``: the faults go on until that many
    workers and Redis were killed even if the jobs ended sooner (a fast machine)."""
    farm = KillFarm(root, workers)
    report = farm.report
    started = time.monotonic()
    started_at = time.time()
    try:
        farm.start()
        program = FAST_EXIT_RECORDER if fast_exit else RECORDER
        spec = {"argv": [sys.executable, "-c", program, str(farm.records), str(job_seconds)],
                "retries": retries, "resources": {"labels": {"pool": "kills"}}}
        url = f"http://127.0.0.1:{farm.settings.gateway_port}"
        ids: list[str] = []
        with httpx.Client(base_url=url, timeout=60) as http:
            while len(ids) < jobs:
                response = http.post("/api/v1/jobs/batch",
                                     json={"jobs": [spec] * min(50, jobs - len(ids))})
                assert response.status_code == 201, response.text
                ids += [j["id"] for j in response.json()["jobs"]]
        report.submitted = len(ids)
        # the Redis kill comes half-way through the expected run
        expected_s = jobs * (job_seconds + 0.3) / (2 * workers)
        injector = threading.Thread(
            target=farm.inject,
            args=(kill_every_s, max(2, int(expected_s / kill_every_s / 2))), daemon=True)
        injector.start()
        store = JobStore(redis.Redis.from_url(farm.server.url))

        def states() -> list[str]:
            try:
                return [j.state.value for j in store.get_many(ids)]
            except redis.RedisError:
                return []

        try:
            wait_for(states, lambda s: len(s) == len(ids) and all(x in FINAL for x in s)
                     and report.worker_kills >= min_worker_kills and report.redis_kills >= 1,
                     timeout_s, f"{len(ids)} jobs to end", interval_s=1.0)
        except AssertionError:
            pass  # counted as lost below
        farm.stop.set()
        injector.join(timeout=30)
        report.seconds = time.monotonic() - started
        final = {j.id: j for j in store.get_many(ids)}
        for job_id in ids:
            job = final.get(job_id)
            runs = runs_of(farm.records, job_id)
            if job is None or job.state.value not in FINAL:
                report.lost.append(job_id)
                continue
            report.states[job.state.value] += 1
            if job.state.value == "failed":
                report.reasons[job.error or job.reason or "?"] += 1
                if any(r.ended for r in runs):
                    report.completed_marked_failed.append(job_id)
            if any(a.last >= b.start for a, b in itertools.pairwise(runs)):
                report.overlapping.append(job_id)
            if sum(r.ended for r in runs) > 1:
                report.ended_twice.append(job_id)
            if any(e.type == "state" and e.data.get("recorded_by")
                   for e in store.events(job_id)):
                report.recorded_by_guard += 1
            if [u.attempt for u in job.usage] != list(range(1, job.attempt + 1)):
                report.usage_miscounted.append(job_id)
        _, total = combine(UsageStore(store.connection).rows(
            "node", day_of(started_at) - 1, day_of(time.time())), "total")
        report.usage_attempts = (total.attempts, sum(len(j.usage) for j in final.values()))
    finally:
        farm.close()
    return report

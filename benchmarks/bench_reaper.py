"""Reaper benchmark: the cost of one ``Dispatcher.reap_lost`` round with many active jobs.

Every dispatcher round first looks for lost attempts among the scheduled and running
jobs. It now reads every active job's lease in one pipelined round trip
(``JobStore.attempts``) and loads whole jobs only for the ones it reaps. Its peer, run
in the same process on the same data, is the read pattern it replaced: every active job
loaded with its spec (``get_many``) plus two single-field reads per job, one round trip
each.

Starts a private ``redis-server`` (from PATH) on a free port; ``--jobs`` running jobs
(2,000 by default) on one live node, leases current, so nothing is reaped (the common
round). Prints the median round time, the commands and round trips per round, and
``target ...: met|NOT met``.

Run: ``PYTHONPATH=. python benchmarks/bench_reaper.py [--jobs N] [--rounds N]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.common import start_redis
from simfarm.client.embedded import free_port
from simfarm.common.models import JobSpec, NodeInfo
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.workers.context import RunnerTable, WorkerContext
from simfarm.workers.dispatcher import Dispatcher


class CountingClient(redis.Redis):
    """A real client counting commands and round trips (a pipeline is one trip)."""

    commands = 0
    trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingClient.commands += 1
        CountingClient.trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(raise_on_error: bool = True) -> Any:
            CountingClient.commands += len(pipe.command_stack)
            CountingClient.trips += 1
            return original(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


def fill(jobs: JobStore, count: int, node: str, boot: str) -> None:
    ids = jobs.create_batch([(f"job{i:06d}", JobSpec(argv=["true"]), {}) for i in range(count)])
    until = repr(time.time() + 3600)
    for job_id in ids:
        jobs.transition(job_id, JobState.SCHEDULED, new_attempt=True,
                        fields={"node": node, "lease_until": until, "boot": boot})
        jobs.transition(job_id, JobState.RUNNING)


def previous_reads(jobs: JobStore, nodes: NodeStore) -> None:
    """What a round read before: each active job whole, then two fields one by one."""
    ids = jobs.ids_in_state(JobState.SCHEDULED) + jobs.ids_in_state(JobState.RUNNING)
    nodes.all()
    key = jobs.keys.job
    for job in jobs.get_many(ids):
        jobs.connection.hget(key(job.id), "lease_until")
        jobs.connection.hget(key(job.id), "boot")


def measure(fn: Any, rounds: int) -> tuple[float, float, float]:
    times = []
    CountingClient.commands = CountingClient.trips = 0
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return (statistics.median(times), CountingClient.commands / rounds,
            CountingClient.trips / rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="simfarm-bench-reaper-"))
    port = free_port()
    proc = start_redis(root / "redis", port)
    try:
        connection = CountingClient(port=port)
        settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", node_name="reaper",
                            state_dir=root / "state")
        jobs = JobStore.for_settings(connection, settings)
        nodes = NodeStore(connection, settings.key_prefix)
        ctx = WorkerContext(settings=settings, redis=connection, jobs=jobs, nodes=nodes,
                            runners=RunnerTable({}))
        nodes.heartbeat(NodeInfo(name="n1", hostname="n1", queue="simfarm.node.n1",
                                 cores_total=64, boot_id="b1"), ttl_s=3600)
        fill(jobs, args.jobs, "n1", "b1")
        dispatcher = Dispatcher(ctx, lambda node, job_id, name, attempt: "{}")
        assert dispatcher.reap_lost() == 0
        new = measure(dispatcher.reap_lost, args.rounds)
        old = measure(lambda: previous_reads(jobs, nodes), args.rounds)
        print(f"reaper round, {args.jobs} running jobs (nothing lost), median of {args.rounds}")
        for label, (seconds, commands, trips) in (("reap_lost now", new),
                                                  ("previous reads", old)):
            print(f"  {label:15s} {seconds * 1000:8.1f} ms  {commands:7.0f} commands  "
                  f"{trips:6.0f} round trips")
        ratio = old[0] / new[0]
        print(f"  previous / now: {ratio:.1f}x time, {old[2] / new[2]:.0f}x round trips")
        print(f"target reaper round >= 3x cheaper than the previous reads: "
              f"{'met' if ratio >= 3 else 'NOT met'}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Usage report benchmark: the cost of ``GET /api/v1/usage``'s read is independent of the
number of finished attempts.

Two keyspaces (prefixes) of one private ``redis-server`` (from PATH) get the same farm's
work over the same ``--days`` UTC days — 10 users, 4 accounts, 10 nodes, every one of
them busy every day — once as ``--small`` attempts (100 by default), once as
``--large`` (100,000). Each attempt is recorded the way the farm records it: the real
transitions (``pending → scheduled → running → completed``, the store's Lua, pipelined
here to fill quickly) on a virtual clock spread over the days; the jobs are then
forgotten (retention), the roll-ups stay. The peer of the large report is the small
one, measured in the same run on the same server: the report the API builds
(:meth:`UsageStore.rows` + :func:`combine`, by user, account and node, per day and in
total), median of ``--rounds``. Prints both times, their ratio, the Redis commands per
report and the roll-ups' memory, and ``target ...: met|NOT met``.

Run: ``PYTHONPATH=. python -m benchmarks.bench_usage [--small N] [--large N] [--days N]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import redis

from benchmarks.bench_reaper import CountingClient
from benchmarks.common import start_redis
from simfarm.client.embedded import free_port
from simfarm.common.models import JobSpec
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from simfarm.common.store.jobs import Move
from simfarm.common.store.leases import LeaseEnd, LeaseGrant
from simfarm.common.store.usage import UsageStore
from simfarm.common.usage import DAY_S, Bucket, Dimension, combine, day_of

USERS, ACCOUNTS, NODES = 10, 4, 10
CHUNK = 2000
TARGET_RATIO = 1.5  # the large report may cost at most this many times the small one
REPORTS: list[tuple[Dimension, Bucket]] = [(by, bucket) for by in ("user", "account", "node")
                                           for bucket in ("day", "total")]


class Clock:
    """The virtual time the store's calls are told (``time.time`` of the job store)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(jobs: JobStore, count: int, first_day: int, days: int) -> None:
    """``count`` attempts over ``days`` days from ``first_day``: attempt ``i`` is user
    ``i % 10``'s on node ``i % 10`` charging account ``i % 4``, runs 10 to 60 minutes
    with 1 to 8 cores on day ``i % days``; then its job is forgotten. (The store's
    private call builders let the transitions go in pipelines: the same Lua, filled in
    seconds rather than minutes.)"""
    clock = Clock()
    with mock.patch("simfarm.common.store.jobs.time.time", clock):
        for start in range(0, count, CHUNK):
            chunk = range(start, min(count, start + CHUNK))
            pipe = jobs.connection.pipeline(transaction=False)
            for i in chunk:
                clock.now = (first_day + i % days) * DAY_S  # submitted at the day's start
                spec = JobSpec(argv=["true"], resources={"cores": 1 + i % 8})
                keys, args = jobs._create_call(spec, f"j{i:07d}", None, f"user{i % USERS}",
                                               {"account": f"acct{i % ACCOUNTS}"})
                jobs._create(keys=keys, args=args, client=pipe)
            pipe.execute()
            pipe = jobs.connection.pipeline(transaction=False)
            for i in chunk:
                job_id, node = f"j{i:07d}", f"node{i % NODES}"
                begin = (first_day + i % days) * DAY_S + 3600 + (i * 7) % 36_000
                steps: list[tuple[float, JobState, Move]] = [
                    (begin - 30, JobState.SCHEDULED,
                     {"new_attempt": True, "lease": LeaseGrant(node, begin + 60)}),
                    (begin, JobState.RUNNING, {"lease": LeaseGrant(node, begin + 60)}),
                    (begin + 600 + (i * 13) % 3000, JobState.COMPLETED, {"lease": LeaseEnd()}),
                ]
                for now, target, move in steps:
                    clock.now = now
                    keys, args = jobs._transition_call(job_id, target, move)
                    jobs._transition(keys=keys, args=[*args, "0", "0", ""], client=pipe)
            for result in pipe.execute():
                assert result[0] == b"ok", result
            # retention: the jobs go, their usage stays in the roll-ups
            pipe = jobs.connection.pipeline(transaction=False)
            for i in chunk:
                pipe.delete(jobs.keys.job(f"j{i:07d}"), jobs.keys.job_events(f"j{i:07d}"))
            pipe.execute()


def one_round(usage: UsageStore, first: int, last: int) -> float:
    """Seconds the six reports take together."""
    begin = time.perf_counter()
    for by, bucket in REPORTS:
        rows, total = combine(usage.rows(by, first, last), bucket)
        assert rows and total.attempts
    return time.perf_counter() - begin


def settle(connection: redis.Redis) -> None:
    """Wait for Redis' background work (an AOF rewrite after the fill) to end: it would
    slow whichever report runs beside it."""
    while any(int(connection.info("persistence")[k]) for k in
              ("aof_rewrite_in_progress", "rdb_bgsave_in_progress")):
        time.sleep(0.2)


def rollup_bytes(connection: redis.Redis, usage: UsageStore, first: int, last: int) -> int:
    return sum(int(connection.memory_usage(usage.keys.usage_rollup(d), samples=0) or 0)
               for d in range(first, last + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="simfarm-bench-usage-"))
    port = free_port()
    proc = start_redis(root / "redis", port)
    try:
        connection = CountingClient(port=port)
        first = day_of(time.time()) - args.days
        last = first + args.days - 1
        stores = {}
        for label, count in (("small", args.small), ("large", args.large)):
            jobs = JobStore(connection, f"{label}:")
            begin = time.perf_counter()
            record(jobs, count, first, args.days)
            stores[label] = UsageStore(connection, f"{label}:")
            _, total = combine(stores[label].rows("account", first, last), "total")
            assert total.attempts == count, (total.attempts, count)
            print(f"{count:>9,} attempts recorded in {time.perf_counter() - begin:6.1f} s "
                  f"(the real transitions), roll-ups "
                  f"{rollup_bytes(connection, stores[label], first, last) / 1024:.0f} KiB")
        settle(connection)
        times: dict[str, list[float]] = {"small": [], "large": []}
        commands = dict.fromkeys(times, 0)
        for _ in range(args.rounds):  # interleaved: both see the same machine
            for label, usage in stores.items():
                CountingClient.commands = 0
                times[label].append(one_round(usage, first, last))
                commands[label] = CountingClient.commands
        results = {label: statistics.median(values) for label, values in times.items()}
        for label, count in (("small", args.small), ("large", args.large)):
            print(f"{count:>9,} attempts: six reports (by user, account, node; per day and "
                  f"total) over {args.days} days: {results[label] * 1000:7.2f} ms median of "
                  f"{args.rounds}, {commands[label]} Redis commands")
        ratio = results["large"] / results["small"]
        print(f"report time {args.large:,} / {args.small:,} attempts: {ratio:.2f}x")
        print(f"target report over {args.large:,} attempts <= {TARGET_RATIO}x the one over "
              f"{args.small:,}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

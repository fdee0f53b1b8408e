"""Dashboard benchmark: the jobs table at 100,000 jobs against a baseline of 1,000.

Starts a private ``redis-server`` (from PATH) on a free port, stores jobs with the real
:class:`JobStore` (pipelined ``create_batch``), and renders dashboard pages through the
real Flask app (test client, no network). For each page it prints the median render time
and the number of Redis commands at the baseline size and at the large size, and their
ratios: ~1.0 means the page cost does not grow with the number of jobs.

Run: ``PYTHONPATH=. python benchmarks/bench_dashboard.py [--jobs N] [--baseline N]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from simfarm.client.embedded import free_port, wait_until
from simfarm.common.models import JobSpec
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore
from simfarm.gateway.app import create_app
from tests.helpers import CountingRedis

PAGES = {
    "newest 50": "/",
    "pending, queue order": "/?state=pending",
    "deep cursor page": "/?cursor={deep}",
    "owner filter": "/?owner=alice",
    "owner + state filter": "/?owner=alice&state=pending",
}


def fill(store: JobStore, start: int, stop: int) -> None:
    specs = [JobSpec(argv=["true"], priority=p, owner=o)
             for p in (2, 5, 8) for o in ("alice", "bob")]
    batch = []
    for n in range(start, stop):
        batch.append((f"j{n:08d}", specs[n % len(specs)], {}))
        if len(batch) == 10_000:
            store.create_batch(batch)
            batch = []
    if batch:
        store.create_batch(batch)


def measure(app: Any, url: str, repeat: int = 15) -> tuple[float, int]:
    client = app.test_client()
    times, commands = [], 0
    for _ in range(repeat):
        before = CountingRedis.commands
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        commands = CountingRedis.commands - before
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times) * 1000, commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH")
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                 "--dir", data, "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            connection = CountingRedis.from_url(url)
            wait_until(connection.ping, 20, "redis-server")
            settings = Settings(redis_url=url, events_global=1000, events_per_job=10)
            app = create_app(settings, connection)
            store = JobStore(connection, settings.key_prefix, events_per_job=10,
                             events_global=1000)
            results: dict[str, list[tuple[float, int]]] = {name: [] for name in PAGES}
            done = 0
            for size in (args.baseline, args.jobs):
                started = time.perf_counter()
                fill(store, done, size)
                print(f"stored {size - done:,} jobs in {time.perf_counter() - started:.1f} s"
                      f" (total {size:,})")
                done = size
                deep = str(size // 2)  # a cursor in the middle of the history
                for name, page in PAGES.items():
                    results[name].append(measure(app, page.format(deep=deep)))
            print(f"\n{'page':<24}{'ms @' + format(args.baseline, ','):>12}"
                  f"{'ms @' + format(args.jobs, ','):>14}{'ratio':>8}{'cmds':>7}{'cmds':>7}")
            for name, ((base_ms, base_cmd), (big_ms, big_cmd)) in results.items():
                print(f"{name:<24}{base_ms:>12.2f}{big_ms:>14.2f}{big_ms / base_ms:>8.2f}"
                      f"{base_cmd:>7}{big_cmd:>7}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()

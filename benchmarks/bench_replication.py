"""What waiting for a Redis replica (``WAIT``) costs a submit, measured in one run.

Run: ``PYTHONPATH=. python -m benchmarks.bench_replication [--jobs 1000] [--threads 4]``

One redis-server primary (AOF, fsync every second) with one replica on loopback, and
two gateways on it: one acknowledges a submit once the primary stored it
(``redis_wait_replicas=0``), the other once the replica has it too
(``redis_wait_replicas=1``, the default with a ``redis+sentinel://`` URL). Requests
alternate between the two so load changes hit both alike. Prints the latency of single
submits (p50/p95, one client) and the throughput with ``--threads`` clients (best of 3).
Target: p50 latency with the wait <= 1.5 x without (on loopback; across a LAN add one
round trip to the replica, typically 0.1-0.5 ms).

Then what the workers' wait costs a job's start: a worker also waits for the replica
after it claims an attempt (``scheduled -> running``), before the job's program starts.
Two workers on the same primary, one with ``redis_wait_replicas=0`` and one with 1,
each with its own label; one job at a time, alternating between them, each a program
that writes the time it started. Latency = that time minus the moment the submit was
acknowledged (same machine, same clock): dispatch, the Celery task, the claim, its
``WAIT`` and the program's start. Target: p50 with the wait <= 1.1 x without.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from benchmarks.common import Farm, farm, percentile, start_redis
from simfarm.client.embedded import free_port, wait_until

SPEC = json.dumps({"argv": ["true"], "name": "bench", "priority": 5}).encode()


def start_gateway(the_farm: Farm, name: str, **overrides: Any) -> tuple[str, int]:
    """Another gateway on the farm's Redis; its name and port."""
    port = free_port()
    settings = the_farm.settings.model_copy(update={"gateway_port": port, **overrides})
    the_farm._spawn(name, [sys.executable, "-m", "simfarm.gateway.server"],
                    the_farm.env(settings))
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/api/v1/health",
                                 timeout=2).status_code == 200, 60, name)
    return name, port


def submit(conn: http.client.HTTPConnection) -> float:
    start = time.perf_counter()
    conn.request("POST", "/api/v1/jobs", body=SPEC, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 201:
        raise SystemExit(f"submit failed: {response.status} {data[:300]!r}")
    return time.perf_counter() - start


def latencies(ports: list[int], count: int) -> list[list[float]]:
    """``count`` sequential submits to each port, interleaved; seconds per submit."""
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=60) for p in ports]
    out: list[list[float]] = [[] for _ in ports]
    for _ in range(count):
        for i, conn in enumerate(conns):
            out[i].append(submit(conn))
    return out


def throughput(port: int, total: int, threads: int) -> float:
    counter = iter(range(total))
    lock = threading.Lock()

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            submit(conn)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return total / (time.perf_counter() - start)


def start_latencies(the_farm: Farm, port: int, count: int) -> list[list[float]]:
    """``count`` jobs to each of the workers ``wait0`` and ``wait1`` (started here),
    interleaved, one at a time: seconds from the acknowledged submit to the program's
    start."""
    folder = the_farm.root / "starts"
    folder.mkdir()
    for n in (0, 1):
        the_farm.start_worker(f"wait{n}", redis_wait_replicas=n, worker_concurrency=2,
                              node_cores=2, node_labels={"pool": f"wait{n}"})
    out: list[list[float]] = [[], []]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        for i in range(count + 10):  # the first 10 of each warm up
            for n in (0, 1):
                spec = {"argv": ["sh", "-c", 'date +%s.%N > "$0/$SIMFARM_JOB_ID"', str(folder)],
                        "resources": {"labels": {"pool": f"wait{n}"}}}
                response = http.post("/api/v1/jobs", json=spec)
                acked = time.time()
                if response.status_code != 201:
                    raise SystemExit(f"submit failed: {response.status_code} {response.text}")
                record = folder / response.json()["id"]
                deadline = time.monotonic() + 60
                while not (record.exists() and record.read_text().strip()):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"job {record.name} did not start on wait{n}")
                    time.sleep(0.002)
                if i >= 10:
                    out[n].append(float(record.read_text()) - acked)
    return out


@contextlib.contextmanager
def replicated_farm() -> Iterator[Farm]:
    """A private farm (its gateway with ``redis_wait_replicas=0``) whose redis-server
    has one replica on loopback, synced."""
    with farm(redis_wait_replicas=0) as the_farm:
        replica: subprocess.Popen[bytes] = start_redis(
            Path(the_farm.root / "replica"), free_port(),
            "--replicaof", "127.0.0.1", str(the_farm.redis_port))
        try:
            client = redis.Redis(port=the_farm.redis_port)
            wait_until(lambda: client.info("replication").get("slave0", {}).get("state")
                       == "online", 60, "the replica to sync")
            yield the_farm
        finally:
            replica.terminate()
            replica.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="submits per gateway")
    parser.add_argument("--threads", type=int, default=4, help="clients for throughput")
    parser.add_argument("--starts", type=int, default=200, help="jobs started per worker")
    args = parser.parse_args()
    with replicated_farm() as the_farm:
        ports = [start_gateway(the_farm, f"gateway-wait{n}", redis_wait_replicas=n)[1]
                 for n in (0, 1)]
        latencies(ports, 100)  # warm-up
        plain, waited = latencies(ports, args.jobs)
        rates = [0.0, 0.0]
        for _ in range(3):  # best of 3, interleaved
            for i, port in enumerate(ports):
                rates[i] = max(rates[i], throughput(port, args.jobs, args.threads))
    with replicated_farm() as the_farm:  # a farm of its own: none of the jobs above queued
        starts = start_latencies(the_farm, the_farm.settings.gateway_port, args.starts)
    p50 = [percentile(v, 50) * 1000 for v in (plain, waited)]
    p95 = [percentile(v, 95) * 1000 for v in (plain, waited)]
    ratio = p50[1] / p50[0]
    print(f"submit latency, {args.jobs} submits per gateway, one client, loopback:")
    print(f"  primary only (wait 0)     : p50 {p50[0]:6.2f} ms  p95 {p95[0]:6.2f} ms  "
          f"{rates[0]:6.0f} submits/s with {args.threads} clients")
    print(f"  primary + replica (wait 1): p50 {p50[1]:6.2f} ms  p95 {p95[1]:6.2f} ms  "
          f"{rates[1]:6.0f} submits/s with {args.threads} clients")
    print(f"  WAIT adds {p50[1] - p50[0]:.2f} ms at p50 (x{ratio:.2f})")
    print(f"target p50 with WAIT <= 1.5 x without: {'met' if ratio <= 1.5 else 'NOT met'}")
    s50 = [percentile(v, 50) * 1000 for v in starts]
    s95 = [percentile(v, 95) * 1000 for v in starts]
    start_ratio = s50[1] / s50[0]
    print(f"acknowledged submit -> program started, {args.starts} jobs per worker, one at "
          "a time:")
    print(f"  worker without the claim's WAIT: p50 {s50[0]:6.2f} ms  p95 {s95[0]:6.2f} ms")
    print(f"  worker with the claim's WAIT   : p50 {s50[1]:6.2f} ms  p95 {s95[1]:6.2f} ms")
    print(f"  the claim's WAIT adds {s50[1] - s50[0]:.2f} ms at p50 (x{start_ratio:.2f})")
    print(f"target start p50 with WAIT <= 1.1 x without: "
          f"{'met' if start_ratio <= 1.1 else 'NOT met'}")


if __name__ == "__main__":
    main()

"""Submits per second through a load balancer with one gateway behind it and with two.

Run: ``PYTHONPATH=. python -m benchmarks.bench_gateways [--jobs 3000] [--threads 8]``

One Redis, gateways of one process each on it (``gateway_processes = 1``) and Debian's
HAProxy running deploy/haproxy/haproxy.cfg in front (the balancer the deployment docs
describe): first with only gw-a behind it, then with gw-a and gw-b. The same clients
(``--threads``, each keeping its connection to the balancer) submit the same job; the
runs alternate (1, 2, 1, 2, ...) and the best of each is kept. Target: two gateways
take >= 1.5x the submits of one.

Everything - Redis, HAProxy, the gateways and the clients - shares this machine's
cores, so the ratio is bounded by them: on 2 cores one gateway process already competes
with Redis, HAProxy and the client threads for the second core.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
from pathlib import Path

from benchmarks.bench_replication import start_gateway
from benchmarks.common import farm
from tests.balancer import Balancer

SPEC = json.dumps({"argv": ["true"], "name": "bench", "priority": 5}).encode()


def throughput(port: int, total: int, threads: int) -> float:
    """Submits per second of ``threads`` clients sending ``total`` submits to ``port``."""
    counter = iter(range(total))
    lock = threading.Lock()
    failures: list[str] = []

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            conn.request("POST", "/api/v1/jobs", body=SPEC,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 201:
                failures.append(f"{response.status} {body[:200]!r}")
                return

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise SystemExit(f"submit failed: {failures[0]}")
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000, help="submits per measurement")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with farm(gateway_processes=1, gateway_hostnames=["simfarm.lab.example"],
              gateway_trusted_proxies=["127.0.0.1"]) as the_farm:
        ports = {name: start_gateway(the_farm, name, gateway_processes=1)[1]
                 for name in ("gw-a", "gw-b")}
        balancers = {}
        try:
            for count, names in ((1, ("gw-a",)), (2, ("gw-a", "gw-b"))):
                folder = Path(the_farm.root / f"haproxy-{count}")
                folder.mkdir()
                balancers[count] = Balancer(folder, {n: ports[n] for n in names})
            for count, balancer in balancers.items():
                deadline = time.monotonic() + 30
                while set(balancer.states().values()) != {"UP"} or \
                        len(balancer.states()) != count:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"HAProxy does not see the gateways: "
                                         f"{balancer.states()}")
                    time.sleep(0.2)
            for balancer in balancers.values():
                throughput(balancer.port, 300, args.threads)  # warm-up
            best = {1: 0.0, 2: 0.0}
            for _ in range(args.rounds):
                for count, balancer in balancers.items():
                    best[count] = max(best[count],
                                      throughput(balancer.port, args.jobs, args.threads))
        finally:
            for balancer in balancers.values():
                balancer.stop()
    ratio = best[2] / best[1]
    print(f"submits through HAProxy, {args.threads} clients, {args.jobs} submits, best of "
          f"{args.rounds}, {os.cpu_count()} cores:")
    print(f"  1 gateway : {best[1]:7.0f} submits/s")
    print(f"  2 gateways: {best[2]:7.0f} submits/s  (x{ratio:.2f})")
    print(f"target 2 gateways >= 1.5x the submits of 1: {'met' if ratio >= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()

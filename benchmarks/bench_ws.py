"""State change -> WebSocket client latency with 200 connected clients, p50/p99.

Run: ``PYTHONPATH=. python -m benchmarks.bench_ws [--clients 200] [--jobs 100]``

200 clients (asyncio, one process) subscribe to every state event on
``/api/v1/ws``; a worker runs short jobs submitted every 20 ms, so each job makes four
state changes (pending, scheduled, running, completed). A state change happens when
Redis appends it to the event stream, whose id is Redis' clock in milliseconds; the
latency is the time a client has the message minus that (same machine, 1 ms
resolution). Target: p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
from websockets.asyncio.client import connect

from benchmarks.common import farm, percentile, summary_ms


async def _client(url: str, ready: asyncio.Event, count: list[int], out: list[float],
                  stop: asyncio.Event, total: int) -> None:
    async with connect(url, max_size=None, open_timeout=60) as ws:
        await ws.send(json.dumps({"op": "subscribe", "types": ["state"]}))
        count[0] += 1
        if count[0] == total:
            ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            message = json.loads(raw)
            if message.get("op") == "event":
                out.append(now - int(message["id"].split("-")[0]) / 1000)


async def _run(base: str, clients: int, jobs: int, interval: float) -> list[float]:
    ws_url = base.replace("http://", "ws://") + "/api/v1/ws"
    ready, stop = asyncio.Event(), asyncio.Event()
    latencies: list[float] = []
    count = [0]
    tasks = [asyncio.create_task(_client(ws_url, ready, count, latencies, stop, clients))
             for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 120)
    await asyncio.sleep(1.0)  # every subscription is live
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(jobs):
            await http.post("/api/v1/jobs", json={"argv": ["true"]})
            await asyncio.sleep(interval)
    expected = clients * jobs * 4
    deadline = time.monotonic() + 60
    while len(latencies) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if len(latencies) < expected:
        print(f"  warning: {expected - len(latencies)} of {expected} messages not received")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05,
                        help="seconds between submissions (4 state changes per job)")
    args = parser.parse_args()
    with farm(gateway_threads=args.clients + 64, ws_max_clients=args.clients + 20) as the_farm:
        the_farm.start_worker("bench-node", worker_concurrency=4, node_cores=4)
        latencies = asyncio.run(_run(the_farm.url, args.clients, args.jobs, args.interval))
    p99 = percentile(latencies, 99)
    rate = 4 / args.interval
    print(f"state change -> WebSocket client, {args.clients} clients, ~{rate:.0f} state "
          f"changes/s ({rate * args.clients:.0f} deliveries/s): {summary_ms(latencies)}")
    print(f"  p99 target < 50 ms: {'OK' if p99 < 0.050 else 'MISSED'}")


if __name__ == "__main__":
    main()

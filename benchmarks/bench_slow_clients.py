"""Slow clients and WebSocket capacity of one gateway process: gthread (the old worker
class, 64 threads) against gevent (the default), in the same run.

Run: ``PYTHONPATH=. python -m benchmarks.bench_slow_clients [--slow 300 --idle 300
--ws 3000 --seconds 15]``

1. **Slowloris**: ``--slow`` connections send a request's headers one byte a second
   (reconnecting when closed) and ``--idle`` connections send nothing, while a normal
   client asks for health, submits (and cancels) a job and opens a WebSocket every
   0.2 s for ``--seconds``, each with a 5 s timeout. Reported: the share of the normal
   client's calls that were answered, and their p50/p99 latency.
2. **WebSocket capacity**: up to ``--ws`` clients (asyncio, one process, from eight
   loopback addresses as from eight machines) connect and subscribe; reported: how many
   got ``subscribed`` (the others are refused with 1013 or time out), and the health
   latency while they are connected.

Targets: under attack, >= 99% of the normal client's calls answered (gevent); at least
2,000 WebSocket clients held by one gateway process (gevent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
from websockets.asyncio.client import connect as aconnect
from websockets.sync.client import connect

from benchmarks.common import farm, percentile
from tests.slowloris import Slowloris


@dataclass
class Probe:
    answered: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)

    def record(self, ok: bool, seconds: float) -> None:
        if ok:
            self.answered += 1
            self.latencies.append(seconds)
        else:
            self.failed += 1

    @property
    def share(self) -> float:
        total = self.answered + self.failed
        return self.answered / total if total else 0.0

    def text(self) -> str:
        lat = self.latencies or [float("nan")]
        return (f"{self.answered}/{self.answered + self.failed} answered ({self.share:.1%}), "
                f"p50 {percentile(lat, 50) * 1000:.0f} ms, p99 {percentile(lat, 99) * 1000:.0f} ms")


def _timed(probe: Probe, call: object) -> None:
    start = time.perf_counter()
    try:
        ok = bool(call())  # type: ignore[operator]
    except Exception:
        ok = False
    probe.record(ok, time.perf_counter() - start)


def normal_client(url: str, seconds: float) -> dict[str, Probe]:
    probes = {"health": Probe(), "submit": Probe(), "websocket": Probe()}
    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"
    with httpx.Client(base_url=url, timeout=5) as http:
        def health() -> bool:
            return http.get("/api/v1/health").status_code == 200

        def submit() -> bool:
            job = http.post("/api/v1/jobs", json={"argv": ["true"], "priority": 0})
            return job.status_code == 201 and http.post(
                f"/api/v1/jobs/{job.json()['id']}/cancel").status_code == 200

        def websocket() -> bool:
            with connect(ws_url, open_timeout=5) as ws:
                ws.send(json.dumps({"op": "subscribe", "types": ["state"]}))
                return bool(json.loads(ws.recv(timeout=5))["op"] == "subscribed")

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, call in (("health", health), ("submit", submit),
                               ("websocket", websocket)):
                _timed(probes[name], call)
            time.sleep(0.2)
    return probes


async def _ws_client(url: str, held: list[int], release: asyncio.Event, source: str) -> None:
    try:
        async with aconnect(url, open_timeout=30, ping_interval=None,
                            local_addr=(source, 0)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "types": ["state"]}))
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message.get("op") != "subscribed":
                return
            held[0] += 1
            await release.wait()
    except Exception:
        return


async def ws_capacity(url: str, clients: int) -> tuple[int, Probe]:
    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"
    held = [0]
    release = asyncio.Event()
    tasks = []
    for start in range(0, clients, 200):  # in waves, as dashboards open over time
        # from 127.0.0.2-9, as dashboards on 8 machines (each address may hold
        # gateway_client_connections); their ports stay off 127.0.0.1's
        tasks += [asyncio.create_task(_ws_client(ws_url, held, release,
                                                 f"127.0.0.{2 + (start + i) % 8}"))
                  for i in range(min(200, clients - start))]
        await asyncio.sleep(0.2)
    await asyncio.sleep(5)  # let the last handshakes finish or be refused
    probe = Probe()
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        for _ in range(20):
            start_t = time.perf_counter()
            try:
                ok = (await http.get("/api/v1/health")).status_code == 200
            except Exception:
                ok = False
            probe.record(ok, time.perf_counter() - start_t)
    count = held[0]
    release.set()
    await asyncio.gather(*tasks)
    return count, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--ws", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    results: dict[str, tuple[dict[str, Probe], int, Probe, dict[str, Probe]]] = {}
    for worker_class in ("gthread", "gevent"):
        with farm(gateway_worker_class=worker_class) as the_farm:
            port = the_farm.settings.gateway_port
            quiet = normal_client(the_farm.url, 3)
            with Slowloris(port, args.slow, args.idle):
                attacked = normal_client(the_farm.url, args.seconds)
            held, during = asyncio.run(ws_capacity(the_farm.url, args.ws))
        results[worker_class] = (attacked, held, during, quiet)
        print(f"{worker_class}: without attack: "
              + "; ".join(f"{k} {v.text()}" for k, v in quiet.items()))
        print(f"{worker_class}: {args.slow} slow + {args.idle} idle connections: "
              + "; ".join(f"{k} {v.text()}" for k, v in attacked.items()))
        print(f"{worker_class}: WebSocket clients held: {held} of {args.ws}; "
              f"health meanwhile {during.text()}")
    attacked, held, _, _ = results["gevent"]
    worst = min(p.share for p in attacked.values())
    old_worst = min(p.share for p in results["gthread"][0].values())
    print(f"target slowloris (gevent answers >= 99% of calls; gthread {old_worst:.1%}): "
          f"{'met' if worst >= 0.99 else 'NOT met'} ({worst:.1%})")
    print(f"target WebSocket capacity (>= 2000 per process; gthread {results['gthread'][1]}): "
          f"{'met' if held >= 2000 else 'NOT met'} ({held})")


if __name__ == "__main__":
    main()

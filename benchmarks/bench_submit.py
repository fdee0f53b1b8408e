"""Submit throughput through the gateway (one job per request, and the batch endpoint)
against raw Celery ``apply_async`` of a no-op task on the same Redis, measured in one run.

Run: ``PYTHONPATH=. python -m benchmarks.bench_submit [--jobs 3000] [--threads 8]``

Both sides start from the same state: a private redis-server (AOF, fsync every second,
as ``simfarm up`` runs it), no worker consuming (only the submission is measured), the
same number of client threads. A gateway submission validates the spec, stores the job
(hash, state index, owner index, event streams) in one Lua call, audits it and answers
with the stored job; ``apply_async`` only pushes a message onto a list.
Target: gateway single-job rate >= 0.5 x Celery's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections.abc import Callable

from celery import Celery

from benchmarks.common import Farm, farm

SPEC = {"argv": ["true"], "name": "bench", "priority": 5}


def _run_threads(threads: int, total: int, work: Callable[[int], None]) -> float:
    """Run ``work(i)`` for i in range(total) over ``threads`` threads; jobs per second."""
    counter = iter(range(total))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            work(i)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return total / (time.perf_counter() - start)


def _poster(the_farm: Farm, path: str, body: bytes) -> Callable[[int], None]:
    """POST ``body`` to ``path`` over one keep-alive connection per thread.

    The standard library's client, not httpx: on a 2-core machine the client's own CPU
    time would otherwise be a large part of what is measured."""
    local = threading.local()
    port = the_farm.settings.gateway_port
    headers = {"Content-Type": "application/json"}

    def post(_: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 201:
            raise SystemExit(f"POST {path} failed: {response.status} {data[:300]!r}")

    return post


def gateway_single(the_farm: Farm, total: int, threads: int) -> float:
    post = _poster(the_farm, "/api/v1/jobs", json.dumps(SPEC).encode())
    return _run_threads(threads, total, post)


def gateway_batch(the_farm: Farm, total: int, threads: int, size: int) -> float:
    body = json.dumps({"jobs": [SPEC] * size}).encode()
    return _run_threads(threads, max(1, total // size),
                        _poster(the_farm, "/api/v1/jobs/batch", body)) * size


def celery_apply_async(the_farm: Farm, total: int, threads: int) -> float:
    app = Celery("bench", broker=the_farm.redis_url)
    app.conf.update(task_ignore_result=True, broker_pool_limit=threads * 2,
                    task_serializer="json", broker_connection_retry_on_startup=True)

    @app.task(name="bench.noop")  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    noop.apply_async(queue="bench.noop")  # connect once before timing

    def send(_: int) -> None:
        noop.apply_async(queue="bench.noop")

    return _run_threads(threads, total, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000, help="submissions per measurement")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--batch", type=int, default=500, help="jobs per batch request")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument("--processes", type=int, default=1,
                        help="gateway processes (settings.gateway_processes)")
    args = parser.parse_args()
    with farm(gateway_processes=args.processes) as the_farm:
        gateway_single(the_farm, 200, args.threads)  # warm-up: connections, caches
        celery_apply_async(the_farm, 200, args.threads)
        single = batch = celery = 0.0
        for _ in range(args.rounds):  # interleaved so load changes hit both sides alike
            celery = max(celery, celery_apply_async(the_farm, args.jobs, args.threads))
            single = max(single, gateway_single(the_farm, args.jobs, args.threads))
            batch = max(batch, gateway_batch(the_farm, args.jobs * 4, max(1, args.threads // 2),
                                             args.batch))
    print(f"submit throughput, {args.jobs} submissions, {args.threads} threads, "
          f"{args.processes} gateway process(es), best of {args.rounds}:")
    print(f"  celery apply_async (no-op task) : {celery:8.0f} /s   (baseline)")
    print(f"  gateway POST /api/v1/jobs       : {single:8.0f} /s   ratio {single / celery:5.2f}x "
          f"(target >= 0.5x) {'OK' if single / celery >= 0.5 else 'MISSED'}")
    print(f"  gateway POST /api/v1/jobs/batch : {batch:8.0f} /s   ratio {batch / celery:5.2f}x "
          f"({args.batch} jobs per request)")


if __name__ == "__main__":
    main()

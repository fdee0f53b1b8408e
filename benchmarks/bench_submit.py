"""Submit throughput through the gateway (one job per request, and the batch endpoint)
against raw Celery ``apply_async`` of a no-op task on the same Redis, measured in one run.

Run: ``PYTHONPATH=. python -m benchmarks.bench_submit [--jobs 3000] [--threads 8]``

Measured with one client thread (the strongest producer figure: ``apply_async`` from one
thread is not slowed by threads sharing a GIL) and with ``--threads`` threads.

Both sides start from the same state: a private redis-server (AOF, fsync every second,
as ``simfarm up`` runs it), no worker consuming (only the submission is measured), the
same number of client threads. A gateway submission validates the spec, stores the job
(hash, state index, owner index, event streams) in one Lua call, audits it and answers
with the stored job; ``apply_async`` only pushes a message onto a list.
Targets: with one gateway process, single-job rate >= 0.6x Celery's from one client
thread (issue 15), >= 0.5x with ``--threads`` threads.
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
    counts = sorted({1, args.threads})
    single = dict.fromkeys(counts, 0.0)
    celery = dict.fromkeys(counts, 0.0)
    batch = 0.0
    with farm(gateway_processes=args.processes) as the_farm:
        gateway_single(the_farm, 200, args.threads)  # warm-up: connections, caches
        celery_apply_async(the_farm, 200, args.threads)
        for _ in range(args.rounds):  # interleaved so load changes hit both sides alike
            for threads in counts:
                celery[threads] = max(celery[threads],
                                      celery_apply_async(the_farm, args.jobs, threads))
                single[threads] = max(single[threads],
                                      gateway_single(the_farm, args.jobs, threads))
            batch = max(batch, gateway_batch(the_farm, args.jobs * 4, max(1, args.threads // 2),
                                             args.batch))
    print(f"submit throughput, {args.jobs} submissions, {args.processes} gateway process(es), "
          f"best of {args.rounds}:")
    for threads in counts:
        ratio = single[threads] / celery[threads]
        print(f"  {threads} client thread(s): celery apply_async (no-op task) "
              f"{celery[threads]:7.0f} /s; gateway POST /api/v1/jobs {single[threads]:7.0f} /s;"
              f" ratio {ratio:5.2f}x")
    print(f"  gateway POST /api/v1/jobs/batch: {batch:8.0f} jobs/s ({args.batch} jobs per "
          f"request, {max(1, args.threads // 2)} threads), {batch / celery[counts[-1]]:5.2f}x "
          f"celery with {counts[-1]} threads")
    one = single[1] / celery[1]
    print(f"target one gateway process >= 0.6x Celery apply_async from one client thread: "
          f"{'met' if one >= 0.6 else 'NOT met'} ({one:.2f}x)")
    if args.threads > 1:
        many = single[args.threads] / celery[args.threads]
        print(f"target >= 0.5x Celery with {args.threads} client threads: "
              f"{'met' if many >= 0.5 else 'NOT met'} ({many:.2f}x)")


if __name__ == "__main__":
    main()

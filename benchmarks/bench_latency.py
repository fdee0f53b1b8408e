"""Submit -> running latency on an idle worker, p50/p99.

Run: ``PYTHONPATH=. python -m benchmarks.bench_latency [--jobs 200]``

One job at a time goes through the real path: HTTP submit to the gateway, the
dispatcher (woken by the submit), a Celery task on the node's queue, the worker marking
the job running. Latency = the job's ``started_at`` (set by the worker when it moves the
job to running) minus the moment before the client sent the request (same machine,
same clock). The next job is submitted once the previous one finished, so the worker is
idle each time. Targets: p50 < 20 ms, p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import time

import httpx

from benchmarks.common import farm, percentile, summary_ms
from simfarm.common.states import JobState
from simfarm.common.store import JobStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    latencies: list[float] = []
    with farm() as the_farm:
        the_farm.start_worker("bench-node", worker_concurrency=4, node_cores=4)
        store = JobStore(the_farm.redis())
        with httpx.Client(base_url=the_farm.url, timeout=30) as http:
            for i in range(args.jobs + 10):
                started = time.time()
                job_id = http.post("/api/v1/jobs", json={"argv": ["true"]}).json()["id"]
                deadline = time.monotonic() + 30
                while store.state_of(job_id) not in (JobState.COMPLETED, JobState.FAILED):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"job {job_id} did not finish in 30 s")
                    time.sleep(0.002)
                if i >= 10:  # the first ones warm up connections and imports
                    latencies.append(store.get(job_id).started_at.timestamp() - started)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"submit -> running on an idle worker: {summary_ms(latencies)}")
    print(f"  p50 target < 20 ms: {'OK' if p50 < 0.020 else 'MISSED'};  "
          f"p99 target < 100 ms: {'OK' if p99 < 0.100 else 'MISSED'}")


if __name__ == "__main__":
    main()

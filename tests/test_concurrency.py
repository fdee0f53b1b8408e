"""Many clients at once: nothing lost, nothing duplicated, nothing run twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from simfarm.common.store import JobStore
from tests.helpers import wait_for


def test_500_concurrent_submissions_all_run_once(
    gateway: str, worker: object, store: JobStore
) -> None:
    def submit(i: int) -> str:
        with httpx.Client(base_url=gateway, timeout=60) as client:
            response = client.post("/api/v1/jobs", json={"argv": ["true"], "name": f"c{i}"})
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = list(pool.map(submit, range(500)))
    assert len(set(ids)) == 500

    def finished() -> int:
        return sum(1 for j in store.get_many(ids) if j.final)

    wait_for(finished, lambda n: n == 500, 120, "all 500 jobs to finish", interval_s=0.5)
    jobs = store.get_many(ids)
    assert {j.spec.name for j in jobs} == {f"c{i}" for i in range(500)}
    assert all(j.state.value == "completed" and j.attempt == 1 for j in jobs)
    for job_id in ids[:50]:
        runs = [e for e in store.events(job_id) if e.type == "state" and e.data["to"] == "running"]
        assert len(runs) == 1

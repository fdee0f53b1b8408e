"""Job dependencies end to end: held jobs, chains, failure propagation, rejected ids."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from simfarm.common.deps import Dependencies, verdict
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from tests.helpers import wait_for

PY = sys.executable
FINAL = ("completed", "failed", "cancelled")


def submit(http: httpx.Client, **spec: Any) -> dict[str, Any]:
    response = http.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_final(http: httpx.Client, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
    return wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                    lambda j: j["state"] in FINAL, timeout_s, f"job {job_id} to end")


def test_verdict_rules() -> None:
    deps = {"after_ok": ["a"], "after_failed": ["b"], "after_any": ["c"]}
    states = {"a": JobState.COMPLETED, "b": JobState.CANCELLED, "c": JobState.FAILED}
    assert verdict(deps, states).status == "ready"
    assert verdict(deps, {**states, "a": JobState.FAILED}).status == "never"
    assert verdict(deps, {**states, "b": JobState.COMPLETED}).status == "never"
    assert verdict(deps, {**states, "c": JobState.RUNNING}).waiting == 1
    assert verdict(deps, {**states, "a": None}).detail.startswith("job a no longer exists")
    assert Dependencies(after_ok=["x", "x"]).ids() == ["x"]


def test_chain_runs_in_order(farm: httpx.Client) -> None:
    first = submit(farm, argv=[PY, "-c", "import time; time.sleep(0.6)"])
    second = submit(farm, argv=["true"], depends_on={"after_ok": [first["id"]]})
    third = submit(farm, argv=["true"], depends_on={"after_ok": [second["id"]]})
    # Held jobs are pending for every reader, with why.
    assert second["state"] == "pending" and second["gate"] == "dependencies"
    assert second["dependencies"] == {"after_ok": [first["id"]]}
    done = [wait_final(farm, j["id"]) for j in (first, second, third)]
    assert [j["state"] for j in done] == ["completed"] * 3
    assert done[1]["started_at"] >= done[0]["finished_at"]
    assert done[2]["started_at"] >= done[1]["finished_at"]
    assert done[1]["gate"] is None


def test_failure_propagates_and_after_failed_runs(farm: httpx.Client) -> None:
    root = submit(farm, argv=[PY, "-c", "import time, sys; time.sleep(0.3); sys.exit(2)"])
    ok_child = submit(farm, argv=["true"], depends_on={"after_ok": [root["id"]]})
    grandchild = submit(farm, argv=["true"], depends_on={"after_ok": [ok_child["id"]]})
    on_failure = submit(farm, argv=["true"], depends_on={"after_failed": [root["id"]]})
    always = submit(farm, argv=["true"], depends_on={"after_any": [root["id"]]})
    assert wait_final(farm, root["id"])["state"] == "failed"
    for job in (ok_child, grandchild):
        ended = wait_final(farm, job["id"])
        assert (ended["state"], ended["reason"]) == ("cancelled", "dependency failed")
        assert ended["started_at"] is None
    assert wait_final(farm, on_failure["id"])["state"] == "completed"
    assert wait_final(farm, always["id"])["state"] == "completed"
    # A dependent submitted after its dependency already failed is cancelled as well.
    late = submit(farm, argv=["true"], depends_on={"after_ok": [root["id"]]})
    assert wait_final(farm, late["id"])["reason"] == "dependency failed"


def test_unknown_dependency_is_rejected(http: httpx.Client) -> None:
    response = http.post("/api/v1/jobs", json={
        "argv": ["true"], "depends_on": {"after_any": ["no-such-job"]}})
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {"field": "depends_on.after_any.0", "reason": "unknown job or sweep id no-such-job"}]


def test_gated_jobs_do_not_block_the_queue(store: JobStore) -> None:
    """Gated jobs stay pending but never reach the dispatcher's view of the queue."""
    from simfarm.common.models import JobSpec

    held, _ = store.create(JobSpec(argv=["true"], priority=10),
                           extra={"gate": "dependencies", "reason": "test"})
    free, _ = store.create(JobSpec(argv=["true"], priority=0, resources={"cores": 999}))
    try:
        pending = store.pending_ids(10_000)
        assert free.id in pending and held.id not in pending
        assert held.id in store.gated_ids()
        assert store.get(held.id).state is JobState.PENDING
        store.set_priority(held.id, 9)  # re-ranking keeps it gated
        assert held.id not in store.pending_ids(10_000)
    finally:
        store.request_cancel(held.id)
        store.request_cancel(free.id)


def test_workflow_by_local_names_and_cycles_rejected(farm: httpx.Client,
                                                     store: JobStore) -> None:
    from simfarm.client.client import Client

    with Client(str(farm.base_url)) as client:
        jobs = client.submit_workflow({
            "post": {"argv": ["true"], "depends_on": {"after_ok": ["solve"]}},
            "solve": {"argv": [PY, "-c", "import time; time.sleep(0.3)"],
                      "depends_on": {"after_ok": ["mesh"]}},
            "mesh": {"argv": ["true"]},
        })
        assert jobs["solve"].dependencies == {"after_ok": [jobs["mesh"].id]}
        done = {n: wait_final(farm, j.id) for n, j in jobs.items()}
    assert all(j["state"] == "completed" for j in done.values())
    assert done["post"]["started_at"] >= done["solve"]["finished_at"]
    assert done["solve"]["started_at"] >= done["mesh"]["finished_at"]

    before = store.counts()
    cyclic = farm.post("/api/v1/workflows", json={"jobs": {
        "a": {"argv": ["true"], "depends_on": {"after_ok": ["b"]}},
        "b": {"argv": ["true"], "depends_on": {"after_any": ["c"]}},
        "c": {"argv": ["true"], "depends_on": {"after_ok": ["a"]}}}})
    assert cyclic.status_code == 422
    assert cyclic.json()["detail"] == "dependency cycle: a -> b -> c -> a"
    unknown = farm.post("/api/v1/workflows", json={"jobs": {
        "a": {"argv": ["true"], "depends_on": {"after_ok": ["nope"]}}}})
    assert unknown.status_code == 422
    assert unknown.json()["fields"][0]["field"] == "jobs.a.depends_on.after_ok.0"
    assert store.counts() == before  # nothing was created

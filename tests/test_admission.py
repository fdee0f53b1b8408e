"""One way in: a job no node could ever run is refused with the same 422 and reason
through every door (single submit, batch, sweep, workflow, resubmit, the PyEDB submit
routes), over HTTP against the real gateway, and nothing is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from simfarm.common.models import JobSpec
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore

# No AEDT node of the test farm has 64 cores (hfss-node has 16): an HFSS run told to use
# 64 never fits. The reason names the largest AEDT node, whichever is registered.
MISS = "no registered node with matching labels can ever fit 64 cores, aedt.any=yes"


@pytest.fixture
def hfss(tmp_path: Path) -> dict[str, Any]:
    project = tmp_path / "board.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=2\n$end 'Setup1'\n")
    return {"project_path": str(project),
            "machine_nodes": [{"hostname": "localhost", "cores": 64, "max_cores": 64}]}


def newest(http: httpx.Client, what: str) -> list[str]:
    """The ids of the newest job or sweep (to see that nothing was stored)."""
    body = http.get(f"/api/v1/{what}", params={"limit": 1}).json()
    return [item["id"] for item in body[what]]


def refused(response: httpx.Response, field: str, reason: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["fields"] == [{"field": field, "reason": reason}]
    return body


def test_never_fitting_job_is_refused_alike_through_every_door(
    http: httpx.Client, hfss_node: Settings, hfss: dict[str, Any]
) -> None:
    job = {"kind": "hfss", "hfss": hfss}
    before = newest(http, "jobs"), newest(http, "sweeps")
    response = http.post("/api/v1/jobs", json=job)
    assert response.status_code == 422, response.text
    reason = response.json()["detail"]
    assert reason.startswith(MISS) and "lacks 64 cores" in reason
    single = refused(response, "resources", reason)
    assert single["error"] == "unsatisfiable"

    batch = refused(http.post("/api/v1/jobs/batch", json={"jobs": [job]}), "jobs.0.resources",
                    reason)
    assert (batch["error"], batch["detail"]) == ("unsatisfiable", f"jobs.0: {reason}")

    sweep = refused(http.post("/api/v1/sweeps", json={
        "template": {**job, "name": "v{w}"}, "grid": {"w": [1, 2]}}), "template.resources",
        reason)
    assert sweep["error"] == "unsatisfiable"

    workflow = refused(http.post("/api/v1/workflows", json={"jobs": {
        "mesh": {"argv": ["true"]},
        "solve": {**job, "depends_on": {"after_ok": ["mesh"]}}}}), "jobs.solve.resources",
        reason)
    assert workflow["error"] == "unsatisfiable"

    for route in ("/jobs/submit", "/api/submit"):  # PyEDB's shape, the same reason
        pyedb = http.post(route, json={"config": {**hfss, "jobid": "too_big"}})
        assert pyedb.status_code == 422, pyedb.text
        assert pyedb.json() == {"success": False, "error": reason, "detail": reason,
                                "fields": [{"field": "config", "reason": reason}]}
    assert (newest(http, "jobs"), newest(http, "sweeps")) == before  # nothing stored


def test_resubmitting_a_job_no_node_can_run_any_more_is_refused(
    http: httpx.Client, hfss_node: Settings, store: JobStore, hfss: dict[str, Any]
) -> None:
    # A job stored while a 64-core AEDT node was in the farm (written straight to the
    # store: that node is gone).
    spec = JobSpec.model_validate({"kind": "hfss", "hfss": hfss,
                                   "resources": {"cores": 64, "labels": {"aedt.any": "yes"}}})
    old, _ = store.create(spec)
    store.request_cancel(old.id)
    response = http.post(f"/api/v1/jobs/{old.id}/resubmit", json={})
    alone = http.post("/api/v1/jobs", json={"kind": "hfss", "hfss": hfss}).json()["detail"]
    assert refused(response, "resources", alone)["error"] == "unsatisfiable"
    assert http.get(f"/api/v1/jobs/{old.id}").json()["resubmitted_as"] is None

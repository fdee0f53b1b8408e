"""PyEDB's REST routes and JSON shapes, served by the real gateway over HTTP."""

from __future__ import annotations

import getpass
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from simfarm.common.hfss import HFSSSimulationConfig, create_hfss_config
from simfarm.common.settings import Settings
from tests.helpers import wait_for

TERMINAL = ("completed", "failed", "cancelled")


def pyedb_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    return next(j for j in http.get("/api/jobs").json() if j["id"] == job_id)


def wait_status(http: httpx.Client, job_id: str, *statuses: str) -> dict[str, Any]:
    return wait_for(lambda: pyedb_job(http, job_id), lambda j: j["status"] in statuses, 30,
                    f"job {job_id} to reach {statuses}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "pcb.aedb"
    path.mkdir()
    (path / "edb.def").write_text("fake edb")
    return path


def config_dict(project: Path, **kwargs: Any) -> dict[str, Any]:
    jobid = kwargs.pop("jobid", f"JOB_{uuid.uuid4().hex[:10]}")
    return create_hfss_config(project_path=str(project), jobid=jobid, **kwargs).to_dict()


def test_submit_list_and_log_like_pyedb(http: httpx.Client, hfss_node: Settings,
                                        project: Path) -> None:
    cfg = config_dict(project, jobid="pcb_run_1")
    cfg["ansys_edt_path"] = r"C:\Program Files\ANSYS Inc\v252\AnsysEM\ansysedt.exe"  # ignored
    response = http.post("/jobs/submit", json={"config": cfg, "priority": 0})
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "job_id": "pcb_run_1", "status": "queued",
                               "message": "Job pcb_run_1 submitted successfully"}
    done = wait_status(http, "pcb_run_1", *TERMINAL)
    assert done["status"] == "completed", done
    assert done["return_code"] == 0 and done["priority"] == 0
    assert done["config"]["project_path"] == str(project)
    assert done["config"]["jobid"] == "pcb_run_1"
    assert done["start_time"] and done["end_time"]
    assert done["user"] == getpass.getuser()  # as PyEDB: the service's user by default
    listed = [j for j in http.get("/jobs").json() if j["id"] == "pcb_run_1"]
    assert [(j["status"], j["return_code"]) for j in listed] == [("completed", 0)]
    log = http.get("/api/jobs/pcb_run_1/log")
    assert log.status_code == 200
    parsed = log.json()
    assert parsed["project"]["name"] == "pcb.aedb"
    assert [p["pass_nr"] for p in parsed["adaptive"]] == [1, 2, 3]
    assert parsed["log_parser"] == {"is_converged": True}
    assert parsed["sweep"]["type"] == "Discrete"


def test_api_submit_with_user_machine_nodes_and_batch_options(
    http: httpx.Client, hfss_node: Settings, project: Path
) -> None:
    body = {"config": config_dict(project), "user": "alice", "priority": 3,
            "machine_nodes": [{"hostname": "localhost", "cores": 2, "max_cores": 2}],
            "batch_options": {"enable_gpu": True}}
    response = http.post("/api/submit", json=body)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    job = wait_status(http, job_id, *TERMINAL)
    assert job["user"] == "alice"
    assert job["priority"] == 3
    assert job["config"]["machine_nodes"][0]["cores"] == 2
    assert job["config"]["layout_options"]["enable_gpu"] is True


def test_listed_jobs_show_pyedb_to_dict_of_their_config(
    http: httpx.Client, hfss_node: Settings, project: Path
) -> None:
    """GET /api/jobs renders each job from its stored fields: the config as PyEDB's
    to_dict of what was submitted (defaults included), the times and the state of the
    job as /api/v1 shows it."""
    tag = uuid.uuid4().hex[:6]
    bodies = [
        {"config": config_dict(project, jobid=f"plain_{tag}")},
        {"config": config_dict(project, jobid=f"custom_{tag}", design_name="top",
                               setup_name="S2"), "priority": 2,
         "machine_nodes": [{"hostname": "localhost", "cores": 2, "max_cores": 2},
                           {"hostname": "localhost", "cores": 1, "utilization": 50}],
         "batch_options": {"enable_gpu": True, "mpi_vendor": "Open MPI"}},
    ]
    ids = [http.post("/jobs/submit", json=b).json()["job_id"] for b in bodies]
    for job_id in ids:
        wait_status(http, job_id, *TERMINAL)
    for job_id in ids:
        listed = pyedb_job(http, job_id)
        job = http.get(f"/api/v1/jobs/{job_id}").json()
        expected = HFSSSimulationConfig.model_validate(job["spec"]["hfss"]).to_dict()
        assert {k: v for k, v in listed["config"].items() if k != "timestamp"} == {
            k: v for k, v in expected.items() if k != "timestamp"}
        assert listed["status"] == job["state"] == "completed"
        assert listed["priority"] == job["priority"] - 5
        assert listed["return_code"] == job.get("exit_code")
        for ours, theirs in (("start_time", "started_at"), ("end_time", "finished_at")):
            assert (_instant(listed[ours]) == _instant(job.get(theirs))), (ours, listed, job)
    assert pyedb_job(http, ids[1])["config"]["machine_nodes"][1] == {
        "hostname": "localhost", "cores": 1, "max_cores": 20, "utilization": 50}


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def test_resubmitting_a_finished_jobid_keeps_history(
    http: httpx.Client, hfss_node: Settings, project: Path
) -> None:
    cfg = config_dict(project, jobid="again")
    assert http.post("/jobs/submit", json={"config": cfg}).json()["job_id"] == "again"
    wait_status(http, "again", *TERMINAL)
    second = http.post("/jobs/submit", json={"config": cfg}).json()
    assert second["job_id"] == "again-2"
    assert pyedb_job(http, "again")["status"] == "completed"


def test_invalid_config_is_422_with_fields(http: httpx.Client, hfss_node: Settings) -> None:
    response = http.post("/api/submit", json={"config": {"project_path": "/x/board.brd"}})
    assert response.status_code == 422
    body = response.json()
    assert body["success"] is False
    assert "Project path must be a .aedt or .aedb file" in body["error"]
    assert body["fields"][0]["field"] == "config.project_path"
    assert http.post("/jobs/submit", json=[1, 2]).status_code == 400


def test_unknown_aedt_release_is_refused_at_submit(http: httpx.Client, hfss_node: Settings,
                                                   project: Path) -> None:
    response = http.post("/jobs/submit", json={"config": config_dict(project),
                                               "aedt_version": "2019.1"})
    assert response.status_code == 422
    assert "no worker node has AEDT 2019.1" in response.json()["error"]


def test_scheduler_job_without_cluster_is_refused(http: httpx.Client, hfss_node: Settings,
                                                  project: Path) -> None:
    cfg = config_dict(project, scheduler_type="lsf")
    response = http.post("/jobs/submit", json={"config": cfg})
    assert response.status_code == 422
    assert response.json()["error"] == "no worker is attached to a lsf cluster"


def test_cancel_and_priority_routes(http: httpx.Client, hfss_node: Settings,
                                    project: Path) -> None:
    project.with_suffix(".fake.json").write_text('{"outcome": "hang"}')
    http.post("/jobs/submit", json={"config": config_dict(project, jobid="hang_1")})
    wait_status(http, "hang_1", "running")
    cancel = http.post("/jobs/hang_1/cancel")
    assert cancel.json() == {"success": True, "message": "Job hang_1 cancellation initiated"}
    wait_status(http, "hang_1", *TERMINAL)
    again = http.post("/api/cancel/hang_1")
    assert again.json() == {"status": "failed", "success": False}
    assert http.post("/jobs/nope/cancel").status_code == 404
    assert http.post("/api/cancel/nope").json()["success"] is False
    done = http.post("/jobs/hang_1/priority", json={"priority": 5})
    assert done.status_code == 409 and done.json()["success"] is False
    assert http.post("/jobs/nope/priority", json={"priority": 1}).status_code == 404
    assert pyedb_job(http, "hang_1")["status"] == "cancelled"


def test_status_resources_queue_and_misc_routes(http: httpx.Client, hfss_node: Settings) -> None:
    resources = http.get("/resources").json()
    assert set(resources) >= {"cpu_percent", "memory_percent", "memory_used_gb",
                              "memory_total_gb", "memory_free_gb", "disk_usage_percent",
                              "disk_free_gb", "timestamp"}
    assert resources["memory_total_gb"] > 0
    assert http.get("/api/resources").json().keys() == resources.keys()
    queue = http.get("/queue").json()
    assert set(queue) == {"total_queued", "regular_queue_size", "priority_queues",
                          "running_jobs", "max_concurrent"}
    assert queue["max_concurrent"] >= 2
    status = http.get("/system/status").json()
    assert status["mode"] == "none"
    assert status["scheduler_detection"]["active_scheduler"] == "NONE"
    assert set(status["local_pool"]) == {"running_jobs", "queued_jobs", "max_concurrent"}
    assert http.get("/api/scheduler_type").json() == {"scheduler_type": "none"}
    assert http.get("/api/cluster_partitions").json() == []
    assert http.get("/scheduler/partitions").status_code == 400
    assert http.get("/api/me").json() == {"username": getpass.getuser()}
    assert http.post("/system/start_monitoring").json()["success"] is True
    assert http.get("/api/jobs/unknown-id/log").status_code == 404

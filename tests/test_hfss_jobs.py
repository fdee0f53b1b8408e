"""HFSS jobs end to end: gateway → dispatcher → worker → FAKE ansysedt → progress, artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from simfarm.common.aedt import build_ansysedt_argv
from simfarm.common.hfss import HFSSSimulationConfig
from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from tests.helpers import FAKES, wait_for

TERMINAL = ("completed", "failed", "cancelled")


def submit_hfss(http: httpx.Client, hfss: dict[str, Any], **extra: Any) -> str:
    response = http.post("/api/v1/jobs", json={"kind": "hfss", "hfss": hfss, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_job(http: httpx.Client, job_id: str, *states: str, timeout_s: float = 30) -> Any:
    return wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                    lambda j: j["state"] in (states or TERMINAL), timeout_s,
                    f"job {job_id} to reach {states or TERMINAL}")


def events(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    return list(http.get(f"/api/v1/jobs/{job_id}/events").json()["events"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "board.aedt"
    path.write_text("$begin 'Setup1'\nMaximumPasses=8\n$end 'Setup1'\n")
    return path


def test_node_advertises_aedt_labels(hfss_node: Settings, node_store: NodeStore) -> None:
    node = node_store.get("hfss-node")
    assert node is not None
    assert node.labels["aedt.any"] == "yes"
    assert node.labels["aedt"] == "2025.2"
    assert node.labels["aedt.2025.2"] == "yes"


def test_hfss_job_completes_with_progress_events_and_artifacts(
    http: httpx.Client, hfss_node: Settings, project: Path, tmp_path: Path
) -> None:
    record = tmp_path / "argv.jsonl"
    hfss = {"project_path": str(project), "jobid": "board_1", "design_name": "main",
            "setup_name": "Setup1"}
    job_id = submit_hfss(http, hfss, env={"FAKE_ANSYSEDT_PASSES": "4",
                                          "FAKE_ANSYSEDT_RECORD": str(record)})
    job = wait_job(http, job_id)
    assert job["state"] == "completed", job
    assert job["node"] == "hfss-node"
    assert job["exit_code"] == 0
    progress = job["progress"]
    assert progress["phase"] == "done"
    assert (progress["adaptive_pass"], progress["max_passes"]) == (4, 8)
    assert progress["converged"] is True and progress["delta_s"] is not None
    assert progress["sweep_solved"] == progress["sweep_frequencies"] == 3
    assert str(project.with_suffix(".aedtresults")) in job["artifacts"]
    assert str(project.with_suffix(".log")) in job["artifacts"]
    evs = events(http, job_id)
    streams = {e["data"].get("stream") for e in evs if e["type"] == "log"}
    assert {"aedt_log", "stdout"} <= streams  # batch log and -monitor output
    passes = [e["data"]["adaptive_pass"] for e in evs if e["type"] == "progress"]
    assert passes[0] == 1 and passes[-1] == 4
    # The exact command line the worker ran, from the job's config (its machine list
    # settled at submit: the cores reserved, see test_hfss_cores.py).
    config = HFSSSimulationConfig(**job["spec"]["hfss"])
    expected = build_ansysedt_argv(config, FAKES / "ansysedt")
    assert json.loads(record.read_text()) == expected[1:]


def test_missing_project_fails_on_the_node_with_reason(
    http: httpx.Client, hfss_node: Settings, tmp_path: Path
) -> None:
    job_id = submit_hfss(http, {"project_path": str(tmp_path / "elsewhere.aedb")})
    job = wait_job(http, job_id)
    assert job["state"] == "failed"
    assert "does not exist on node hfss-node" in job["reason"]


def test_aedt_error_marker_fails_even_with_exit_zero(
    http: httpx.Client, hfss_node: Settings, project: Path
) -> None:
    job_id = submit_hfss(http, {"project_path": str(project)},
                         env={"FAKE_ANSYSEDT_OUTCOME": "solver_error"})
    job = wait_job(http, job_id)
    assert job["state"] == "failed"
    assert job["exit_code"] == 0
    assert job["reason"].startswith("AEDT reported an error: [error] Project:board")


def test_word_error_in_messages_does_not_fail_a_job(
    http: httpx.Client, hfss_node: Settings, project: Path
) -> None:
    job_id = submit_hfss(http, {"project_path": str(project)},
                         env={"FAKE_ANSYSEDT_OUTCOME": "error_word"})
    job = wait_job(http, job_id)
    assert job["state"] == "completed", job
    lines = [e["data"]["line"] for e in events(http, job_id) if e["type"] == "log"]
    assert any("Error tolerance" in line for line in lines)


def test_non_zero_exit_status_fails(http: httpx.Client, hfss_node: Settings,
                                    project: Path) -> None:
    job_id = submit_hfss(http, {"project_path": str(project)},
                         env={"FAKE_ANSYSEDT_EXIT_CODE": "3"})
    job = wait_job(http, job_id)
    assert (job["state"], job["exit_code"]) == ("failed", 3)
    assert job["reason"] == "ansysedt exited with status 3"


def test_cancel_kills_ansysedt_and_its_children(
    http: httpx.Client, hfss_node: Settings, project: Path
) -> None:
    job_id = submit_hfss(http, {"project_path": str(project)},
                         env={"FAKE_ANSYSEDT_OUTCOME": "hang", "FAKE_ANSYSEDT_SPAWN_CHILD": "1"})
    child_file = project.parent / "board.fake_child_pid"
    wait_for(child_file.exists, bool, 30, "the fake solver to start its child")
    child = psutil.Process(int(child_file.read_text()))
    wait_job(http, job_id, "running")
    assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    job = wait_job(http, job_id)
    assert job["state"] == "cancelled"
    wait_for(lambda: child.is_running() and child.status() != psutil.STATUS_ZOMBIE,
             lambda alive: not alive, 20, "the solver's child process to be gone")


def test_unknown_aedt_field_is_rejected_with_path(http: httpx.Client) -> None:
    response = http.post("/api/v1/jobs", json={"kind": "hfss", "hfss": {
        "project_path": "/p.aedt", "machine_nodes": [{"hostname": "a", "utilization": 300}]}})
    assert response.status_code == 422
    fields = [f["field"] for f in response.json()["fields"]]
    assert any("machine_nodes.0.utilization" in f for f in fields)


def test_submit_refused_when_no_node_has_that_aedt(http: httpx.Client, hfss_node: Settings,
                                                   project: Path) -> None:
    response = http.post("/api/v1/jobs", json={
        "kind": "hfss", "hfss": {"project_path": str(project)},
        "resources": {"labels": {"aedt.2019.1": "yes"}}})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("no worker node has AEDT 2019.1 installed")
    assert body["fields"][0]["field"] == "resources.labels"

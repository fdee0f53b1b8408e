"""One cores rule for HFSS jobs through every door: a local run reserves exactly the
cores ``ansysedt`` is told (``-machinelist``), and a request no node could ever grant is
refused at submit with the reason ``simfarm submit --hfss --cores N`` gives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from simfarm.common.settings import Settings
from simfarm.compat.pyedb import JobManagerHandler, JobSubmissionError, create_hfss_config
from tests.helpers import ROOT, wait_for
from tests.test_cli import simfarm_argv

TOO_MANY = "lacks 32 cores (node has 16)"  # hfss-node, the largest AEDT node, has 16


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "antenna.aedt"
    path.write_text("$begin 'Setup1'\nMaximumPasses=2\n$end 'Setup1'\n")
    return path


def run(argv: list[str], gateway: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIMFARM_", "PYEDB_"))}
    port = gateway.rsplit(":", 1)[1]
    clean.update({"SIMFARM_URL": gateway, "PYTHONPATH": str(ROOT),
                  "PYEDB_JOB_MANAGER_HOST": "127.0.0.1", "PYEDB_JOB_MANAGER_PORT": port, **env})
    return subprocess.run(argv, env=clean, capture_output=True, text=True, timeout=60,
                          check=False)


def finished(http: httpx.Client, job_id: str) -> dict[str, Any]:
    return wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                    lambda j: j["state"] in ("completed", "failed", "cancelled"), 30,
                    f"job {job_id} to end")


def test_more_cores_than_any_node_is_refused_at_every_door(
    gateway: str, hfss_node: Settings, project: Path
) -> None:
    cli = run([*simfarm_argv(), "submit", "--hfss", str(project), "--cores", "32"], gateway)
    assert cli.returncode == 1 and TOO_MANY in cli.stderr, cli.stderr

    handler = JobManagerHandler(url=gateway)  # PyEDB's documented script, on a 16-core node
    handler.start_service()
    config = create_hfss_config(project_path=str(project))
    config.machine_nodes[0].cores = 32
    with pytest.raises(JobSubmissionError, match=re.escape(TOO_MANY)):
        handler.submit_job(config)
    handler.close()

    local = run([sys.executable, "-m", "simfarm.compat.submit_local_job", "--project-path",
                 str(project), "--num-cores", "32"], gateway)
    assert local.returncode == 1 and TOO_MANY in local.stderr, local.stderr


def test_job_reserves_exactly_the_cores_ansysedt_is_told(
    gateway: str, http: httpx.Client, hfss_node: Settings, project: Path, tmp_path: Path
) -> None:
    # --cores with the machine list left at "all cores": ansysedt is told the 3 reserved.
    record = tmp_path / "argv.jsonl"
    cli = run([*simfarm_argv(), "submit", "--json", "--hfss", str(project), "--cores", "3",
               "--env", f"FAKE_ANSYSEDT_RECORD={record}"], gateway)
    assert cli.returncode == 0, cli.stderr
    job = finished(http, json.loads(cli.stdout)["id"])
    assert job["state"] == "completed" and job["spec"]["resources"]["cores"] == 3
    argv = json.loads(record.read_text())
    assert argv[argv.index("-machinelist") + 1] == "list=localhost:3:20:90%"

    # PyEDB's façade: machine_nodes[0].cores is what the job reserves.
    handler = JobManagerHandler(url=gateway)
    handler.start_service()
    config = create_hfss_config(project_path=str(project))
    config.machine_nodes[0].cores = 2
    job_id = handler.submit_job(config)
    assert handler.wait_until_done(job_id) == "completed"
    handler.close()
    spec = http.get(f"/api/v1/jobs/{job_id}").json()["spec"]
    assert spec["resources"]["cores"] == 2 and spec["hfss"]["machine_nodes"][0]["cores"] == 2

    # A request that disagrees with the machine list's own number is refused.
    both = http.post("/api/v1/jobs", json={"kind": "hfss", "resources": {"cores": 2}, "hfss": {
        "project_path": str(project), "machine_nodes": [{"hostname": "localhost", "cores": 4}]}})
    assert both.status_code == 422
    assert both.json()["fields"][0]["field"] == "resources.cores"
    assert "tell ansysedt to use 4" in both.json()["fields"][0]["reason"]

"""Folder batches and the files/sweeps/history commands through the real entry points
(subprocesses) against the test farm, with HFSS children solved by the FAKE ansysedt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from simfarm.common.projects import scan_projects
from simfarm.common.settings import Settings
from tests.helpers import ROOT, wait_for
from tests.test_cli import simfarm_argv

PROJECT_TEXT = "$begin 'Setup1'\nMaximumPasses=8\n$end 'Setup1'\n"


@pytest.fixture
def env(gateway: str, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    clean.update({"SIMFARM_URL": gateway, "PYTHONPATH": str(ROOT),
                  "SIMFARM_STATE_DIR": str(tmp_path / "client-state")})
    return clean


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90,
                          check=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """a.aedb, b.aedb, c.aedt with c.aedb beside it, and one project in a subfolder."""
    root = tmp_path / "batch"
    for name in ("a", "b", "c"):
        (root / f"{name}.aedb").mkdir(parents=True)
        (root / f"{name}.aedb" / "edb.def").write_bytes(name.encode() * 100)
    (root / "c.aedt").write_text(PROJECT_TEXT)
    (root / "sub" / "d.aedb").mkdir(parents=True)
    (root / "notes.txt").write_text("not a project")
    return root


def wait_sweep(http: httpx.Client, sweep_id: str) -> Any:
    return wait_for(lambda: http.get(f"/api/v1/sweeps/{sweep_id}").json(),
                    lambda s: s["state"] in ("completed", "failed", "cancelled"), 60,
                    f"sweep {sweep_id} to end")


def test_scan_pairs_aedb_with_aedt_like_pyedb(folder: Path) -> None:
    assert [p.name for p in scan_projects(folder)] == ["a.aedb", "b.aedb", "c.aedt"]
    assert [p.name for p in scan_projects(folder, recursive=True)] == [
        "a.aedb", "b.aedb", "c.aedt", "d.aedb"]


def test_submit_batch_staged_then_fetch_and_resubmit(
    env: dict[str, str], folder: Path, http: httpx.Client, hfss_node: Settings, tmp_path: Path
) -> None:
    out = run([*simfarm_argv(), "submit-batch", str(folder), "--staged", "--cores", "1",
               "--throttle", "2", "--json"], env)
    assert out.returncode == 0, out.stderr
    sweep = json.loads(out.stdout)
    assert sweep["size"] == 3 and sweep["throttle"] == 2
    assert [c["variation"]["name"] for c in sweep["children"]] == ["a.aedb", "b.aedb", "c.aedt"]
    done = wait_sweep(http, sweep["id"])
    assert done["state"] == "completed", done

    dest = tmp_path / "fetched"
    fetched = run([*simfarm_argv(), "fetch", sweep["id"], str(dest), "--sweep"], env)
    assert fetched.returncode == 0, fetched.stderr
    assert "results of 3 children" in fetched.stdout
    assert (dest / "2" / "c.aedtresults").is_dir()
    assert "Normal completion" in (dest / "0" / "a.log").read_text()

    child = done["children"][0]["job_id"]
    again = run([*simfarm_argv(), "resubmit", child, "--json"], env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["resubmit_of"] == child
    history = run([*simfarm_argv(), "history", "--state", "completed", "--limit", "5"], env)
    assert history.returncode == 0 and child in history.stdout
    missing = run([*simfarm_argv(), "fetch", "no-such-job"], env)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_submit_local_job_with_a_folder_queues_every_project(
    env: dict[str, str], folder: Path, http: httpx.Client, hfss_node: Settings,
    settings: Settings
) -> None:
    out = run([sys.executable, "-m", "simfarm.compat.submit_local_job", "--project-path",
               str(folder), "--num-cores", "1", "--host", "127.0.0.1",
               "--port", str(settings.gateway_port)], env)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "queued as" in ln]
    assert [Path(ln.split(":")[0]).name for ln in lines] == ["a.aedb", "b.aedb", "c.aedt"]
    assert out.stdout.splitlines()[-1].startswith("3 of 3 projects queued")
    for line in lines:
        job_id = line.rsplit(" ", 1)[1]
        job = wait_for(lambda j=job_id: http.get(f"/api/v1/jobs/{j}").json(),
                       lambda j: j["state"] in ("completed", "failed"), 60, "a batch job")
        assert job["state"] == "completed", job

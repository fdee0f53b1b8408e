"""SLURM-only behaviour, against the real single-node SLURM."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from simfarm.workers.schedulers import ClusterOptions, ClusterState
from simfarm.workers.schedulers.errors import SubmitError
from tests.clusters.conftest import SlurmCluster
from tests.clusters.harness import Cluster, build
from tests.helpers import wait_until


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, tmp_path: Path) -> Cluster:
    cluster = build("slurm", tmp_path / "work")
    yield cluster  # type: ignore[misc]
    cluster.close()


def scontrol_job(native_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", native_id], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


@pytest.mark.timeout(180)
def test_controller_restart_mid_job_keeps_the_outcome_truthful(
        slurm: Cluster, slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    job = slurm.submit(slurm.request(["bash", "-c", f"touch {marker}; sleep 4; exit 2"]))
    poller = slurm.poller()
    seen = slurm.follow(poller, job)
    wait_until(marker.exists, 60, "job to start")
    slurm_cluster.stop_controller()
    try:
        wait_until(lambda: any("status check failed" in p for p in seen.problems), 30,
                   "the poller to notice the controller is gone")
        # The job ends while nobody can answer; it must not be called failed or done yet.
        wait_until(lambda: (job.job_dir / f"{job.native_id}.ec").exists(), 30, "job to end")
        assert not seen.done.is_set(), seen.statuses
    finally:
        slurm_cluster.start()
    final = seen.wait(90)
    assert (final.state, final.exit_code) == (ClusterState.FAILED, 2), seen.statuses
    assert any("works again" in p for p in seen.problems)


def test_options_become_sbatch_directives_slurm_accepts(slurm: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    options = ClusterOptions.from_any({
        "queue": "long", "time": "00:10:00", "nodes": 1, "tasks_per_node": 2,
        "memory": "512MB", "email_notification": "eng@example.com", "priority": "Low"})
    job = slurm.submit(slurm.request(["bash", "-c", f"touch {marker}; sleep 30"]), options)
    try:
        info = scontrol_job(job.native_id)
        assert info["Partition"] == "long"
        assert info["TimeLimit"] == "00:10:00"
        assert info["NumTasks"] == "2"
        assert info["MinMemoryNode"] == "512M"
        assert info["MailUser"] == "eng@example.com"
        assert info["Nice"] == "200"
        assert info["JobName"] == f"simfarm-{job.job_dir.name}-0"
    finally:
        slurm.backend.cancel(job.native_id)


def test_rejected_submission_is_reported_and_not_retried(slurm: Cluster) -> None:
    before = slurm.backend.runner.count("sbatch")
    with pytest.raises(SubmitError, match=r"(?i)invalid partition"):
        slurm.submit(slurm.request(["true"]), ClusterOptions(queue="nosuchpartition"))
    assert slurm.backend.runner.count("sbatch") == before + 1


def test_a_job_carries_its_licences_to_slurm(slurm: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    request = slurm.request(["bash", "-c", f"touch {marker}; sleep 30"])
    request = replace(request, licenses={"simfarm_anshpc": 8, "simfarm_solver": 1})
    job = slurm.submit(request)
    try:
        wait_until(marker.exists, 60, "job to start")
        info = scontrol_job(job.native_id)
        held = dict(item.replace("*", ":").split(":") for item in info["Licenses"].split(","))
        assert held == {"simfarm_anshpc": "8", "simfarm_solver": "1"}
        lic = subprocess.run(["scontrol", "show", "lic", "simfarm_anshpc", "-o"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        assert "Used=8" in lic
    finally:
        slurm.backend.cancel(job.native_id)

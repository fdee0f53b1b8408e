"""Scheduler workers end to end: gateway → dispatcher → worker → real SLURM (or the FAKE
LSF tools) → job states, cluster ids, logs, cancel and node capacity."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from simfarm.common.aedt import build_ansysedt_argv
from simfarm.common.hfss import HFSSSimulationConfig
from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from tests.chaos import TcpProxy
from tests.clusters.conftest import SlurmCluster
from tests.conftest import RedisServer
from tests.helpers import FAKES, start_worker, stop_process, wait_for, wait_until

TERMINAL = ("completed", "failed", "cancelled")


def start_cluster_worker(settings: Settings, node_store: NodeStore, directory: Path,
                         **extra: str) -> subprocess.Popen[bytes]:
    log_path = directory / "worker.log"
    proc = start_worker(settings, log_path, **extra)

    def alive() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log_path.read_text()[-3000:]}")
        node = node_store.get(settings.node_name)
        return node is not None and node.alive and node.cores_total > 0

    wait_until(alive, 60, f"{settings.node_name} to register its cluster capacity")
    return proc


@pytest.fixture(scope="module")
def slurm_node(slurm_cluster: SlurmCluster, settings: Settings, node_store: NodeStore,
               gateway: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    directory = tmp_path_factory.mktemp("slurm-node")
    node = settings.model_copy(update={
        "node_name": "slurm-node", "scheduler": "slurm", "worker_concurrency": 8,
        "scheduler_job_dir": directory / "jobs", "scheduler_poll_s": 0.3,
        "scheduler_poll_max_s": 1.0})
    proc = start_cluster_worker(node, node_store, directory)
    yield node
    stop_process(proc)
    node_store.forget(node.node_name)  # a registered slurm node admits slurm jobs


@pytest.fixture(scope="module")
def lsf_node(settings: Settings, node_store: NodeStore, gateway: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    directory = tmp_path_factory.mktemp("lsf-node")
    node = settings.model_copy(update={
        "node_name": "lsf-node", "scheduler": "lsf", "scheduler_bin_dir": FAKES / "lsf",
        "scheduler_job_dir": directory / "jobs", "scheduler_poll_s": 0.3,
        "scheduler_poll_max_s": 1.0, "scheduler_options": {"queue": "short"}})
    proc = start_cluster_worker(node, node_store, directory,
                                SIMFARM_FAKE_CLUSTER_DIR=str(directory / "fake-lsf"),
                                SIMFARM_FAKE_PEND_S="0.5")
    yield node
    stop_process(proc)
    node_store.forget(node.node_name)  # a registered lsf node, even stopped, admits lsf jobs


def submit(http: httpx.Client, **spec: Any) -> str:
    response = http.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def job_state(http: httpx.Client, job_id: str, *states: str, timeout_s: float = 60) -> Any:
    return wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                    lambda j: j["state"] in (states or TERMINAL), timeout_s,
                    f"job {job_id} to reach {states or TERMINAL}")


def events(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    return list(http.get(f"/api/v1/jobs/{job_id}/events").json()["events"])


def scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout


def test_scheduler_worker_advertises_partition_capacity(slurm_node: Settings,
                                                        node_store: NodeStore) -> None:
    node = node_store.get("slurm-node")
    assert node is not None
    assert node.labels["scheduler"] == "slurm"
    assert node.labels["scheduler.partition"] == "debug"  # SLURM's default partition
    assert node.cores_total == 8 and node.memory_mb_total == 8192


def test_job_waits_as_scheduled_with_cluster_id_then_runs_to_completed(
        http: httpx.Client, slurm_node: Settings) -> None:
    scontrol("update", "PartitionName=long", "State=DOWN")
    try:
        job_id = submit(http, argv=["bash", "-c", "echo hello from $SLURM_JOB_ID; exit 0"],
                        resources={"labels": {"scheduler": "slurm"}},
                        cluster={"queue": "long", "time": "00:05:00"})
        job = wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                       lambda j: j["native_id"] and "PartitionDown" in (j["reason"] or ""),
                       60, "the job to wait in SLURM's queue")
        assert job["state"] == "scheduled" and job["node"] == "slurm-node"
        native_id = job["native_id"]
        info = scontrol("show", "job", "-o", native_id)
        assert "JobState=PENDING" in info and "Partition=long" in info
    finally:
        scontrol("update", "PartitionName=long", "State=UP")
    job = job_state(http, job_id)
    assert (job["state"], job["exit_code"]) == ("completed", 0), job
    seen = events(http, job_id)
    transitions = [e["data"]["to"] for e in seen if e["type"] == "state"]
    assert transitions[-3:] == ["scheduled", "running", "completed"]
    lines = [e["data"]["line"] for e in seen if e["type"] == "log"]
    assert f"hello from {native_id}" in lines


def test_failed_cluster_job_reports_exit_code_and_reason(http: httpx.Client,
                                                         slurm_node: Settings) -> None:
    job_id = submit(http, argv=["bash", "-c", "exit 9"],
                    resources={"labels": {"scheduler": "slurm"}})
    job = job_state(http, job_id)
    assert (job["state"], job["exit_code"]) == ("failed", 9), job
    assert f"slurm job {job['native_id']}" in job["reason"]


def test_cancel_reaches_the_cluster_and_kills_the_process(
        http: httpx.Client, slurm_node: Settings, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job_id = submit(http, argv=["bash", "-c", f"echo $$ > {pid_file}; exec sleep 300"],
                    resources={"labels": {"scheduler": "slurm"}})
    job = job_state(http, job_id, "running")
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "pid file")
    pid = int(pid_file.read_text())
    assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    job = job_state(http, job_id)
    assert job["state"] == "cancelled", job
    wait_until(lambda: not psutil.pid_exists(pid)
               or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 30, "process gone")
    wait_until(lambda: "CANCELLED" in subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job["native_id"], "-o", "%T"], capture_output=True,
        text=True).stdout or "CANCELLED" in subprocess.run(
        ["sacct", "-c", "-n", "-P", "-j", job["native_id"], "-o", "State"],
        capture_output=True, text=True).stdout, 30, "SLURM to record the cancel")


def test_hfss_job_runs_through_sbatch_with_the_ansysedt_command_line(
        http: httpx.Client, slurm_node: Settings, tmp_path: Path) -> None:
    project = tmp_path / "board.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=8\n$end 'Setup1'\n")
    record = tmp_path / "argv.jsonl"
    hfss = {"project_path": str(project), "jobid": "board_slurm", "design_name": "main",
            "setup_name": "Setup1", "ansys_edt_path": str(FAKES / "ansysedt"),
            "scheduler_type": "slurm",
            "scheduler_options": {"queue": "debug", "time": "00:10:00", "nodes": 1,
                                  "tasks_per_node": 2, "memory": "1GB"}}
    job_id = submit(http, kind="hfss", hfss=hfss, env={"FAKE_ANSYSEDT_RECORD": str(record)})
    job = job_state(http, job_id)
    assert (job["state"], job["exit_code"], job["node"]) == ("completed", 0, "slurm-node"), job
    expected = build_ansysedt_argv(HFSSSimulationConfig(**hfss), FAKES / "ansysedt")
    assert json.loads(record.read_text()) == expected[1:]
    assert "-machinelist" in expected and "numcores=2" in expected
    script = Path(slurm_node.scheduler_job_dir or "") / job_id / f"{job_id}.slurm.sh"
    text = script.read_text()
    assert "#SBATCH --partition=debug" in text and "#SBATCH --mem=1024M" in text
    assert project.with_suffix(".aedtresults").is_dir()


def test_job_demanding_lsf_goes_to_the_lsf_worker(http: httpx.Client, lsf_node: Settings,
                                                  slurm_node: Settings,
                                                  node_store: NodeStore) -> None:
    node = node_store.get("lsf-node")
    assert node is not None and node.labels["scheduler"] == "lsf"
    assert node.labels["scheduler.partition"] == "short"
    job_id = submit(http, argv=["bash", "-c", "echo via lsf $LSB_JOBID; exit 0"],
                    resources={"labels": {"scheduler": "lsf"}})
    job = job_state(http, job_id)
    assert (job["state"], job["node"], job["exit_code"]) == ("completed", "lsf-node", 0), job
    lines = [e["data"]["line"] for e in events(http, job_id) if e["type"] == "log"]
    assert f"via lsf {job['native_id']}" in lines


@pytest.mark.timeout(180)
def test_a_stopped_worker_hands_its_cluster_job_to_another_instead_of_resubmitting(
        http: httpx.Client, settings: Settings, node_store: NodeStore, slurm_node: Settings,
        tmp_path: Path) -> None:
    # workers of one cluster share its job folder (scripts, output, exit codes)
    node = pool_worker(settings, "b", tmp_path,
                       scheduler_job_dir=slurm_node.scheduler_job_dir)
    marker = tmp_path / "started"
    proc = start_cluster_worker(node, node_store, tmp_path)
    try:
        job_id = submit_to_pool(http, "b", marker, 6)
        job = job_state(http, job_id, "running")
        native_id = job["native_id"]
        wait_until(marker.exists, 30, "the cluster job to start")
        stop_process(proc)  # warm shutdown: the attempt is handed back, the cluster job stays
        assert squeue_state(native_id) == "RUNNING"
        assert _follower(http, job_id, "slurm-b", timeout_s=30)["node"] == "slurm-node"
        job = job_state(http, job_id, timeout_s=90)
    finally:
        stop_process(proc)
        node_store.forget(node.node_name)
    assert (job["state"], job["exit_code"], job["native_id"]) == ("completed", 0, native_id)
    assert job["attempt"] >= 2 and job["node"] == "slurm-node"
    assert cluster_jobs_named(f"simfarm-{job_id}-") == {native_id}, \
        "later attempts must follow the first cluster job, not submit another"
    seen = events(http, job_id)
    assert "pending" not in [e["data"]["to"] for e in seen if e["type"] == "state"][1:]
    assert any("earlier attempt" in e["data"].get("message", "")
               for e in seen if e["type"] == "info")


def test_redis_outage_while_following_a_cluster_job_changes_nothing(
        http: httpx.Client, settings: Settings, node_store: NodeStore, slurm_node: Settings,
        redis_server: RedisServer, tmp_path: Path) -> None:
    """A worker that loses Redis for a moment keeps following its cluster job: no
    'internal error', no second cluster job, the job completes as attempt 1."""
    proxy = TcpProxy(redis_server.port)
    node = pool_worker(settings, "c", tmp_path,
                       redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    marker = tmp_path / "started"
    proc = start_cluster_worker(node, node_store, tmp_path)
    try:
        job_id = submit_to_pool(http, "c", marker, 5)
        native_id = job_state(http, job_id, "running")["native_id"]
        wait_until(marker.exists, 30, "the cluster job to start")
        with proxy.outage(2.0):  # shorter than the lease: the attempt must carry on
            pass
        job = job_state(http, job_id, timeout_s=60)
    finally:
        stop_process(proc)
        node_store.forget(node.node_name)
        proxy.close()
    assert (job["state"], job["exit_code"], job["attempt"]) == ("completed", 0, 1), job
    assert job["native_id"] == native_id
    assert cluster_jobs_named(f"simfarm-{job_id}-") == {native_id}


def _follower(http: httpx.Client, job_id: str, node: str, timeout_s: float = 60) -> Any:
    """The job once a worker other than ``node`` follows it."""
    return wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                    lambda j: j["node"] != node or j["state"] in TERMINAL, timeout_s,
                    f"another worker to follow job {job_id}")


@pytest.mark.timeout(180)
def test_a_lost_cluster_worker_s_job_is_followed_by_another_worker_to_its_true_end(
        http: httpx.Client, settings: Settings, node_store: NodeStore, slurm_node: Settings,
        tmp_path: Path) -> None:
    """Its worker killed for good and no retry left: the other SLURM worker of the same
    cluster adopts the cluster job (not a second one) and the job completes."""
    # workers of one cluster share its job folder (scripts, output, exit codes)
    node = pool_worker(settings, "d", tmp_path,
                       scheduler_job_dir=slurm_node.scheduler_job_dir)
    marker, release = tmp_path / "started", tmp_path / "release"
    proc = start_cluster_worker(node, node_store, tmp_path)
    try:
        # runs until the test has seen the takeover (the folder is shared with the cluster)
        job_id = submit(http, argv=["bash", "-c", f"touch {marker}; while [ ! -e {release} ]; "
                                    "do sleep 0.2; done; exit 0"],
                        resources={"labels": {"scheduler": "slurm", "pool": "d"}}, retries=0)
        native_id = job_state(http, job_id, "running")["native_id"]
        wait_until(marker.exists, 30, "the cluster job to start")
        proc.kill()  # for good: never started again
        proc.wait(timeout=10)
        taken = _follower(http, job_id, "slurm-d")
        assert taken["node"] == "slurm-node" and taken["state"] in ("scheduled", "running"), taken
        assert squeue_state(native_id) == "RUNNING"  # the gap cost the cluster job nothing
        release.touch()
        job = job_state(http, job_id, timeout_s=60)
    finally:
        stop_process(proc)
        node_store.forget(node.node_name)
    assert (job["state"], job["exit_code"], job["native_id"]) == ("completed", 0, native_id), job
    assert job["node"] == "slurm-node" and job["attempt"] == 2 and job["losses"] == 0
    assert cluster_jobs_named(f"simfarm-{job_id}-") == {native_id}
    moves = [e["data"] for e in events(http, job_id) if e["type"] == "state"]
    assert [m["to"] for m in moves][-3:] == ["scheduled", "running", "completed"]
    assert "slurm-node follows slurm job" in moves[-3]["reason"]


@pytest.mark.timeout(180)
def test_a_cancel_while_a_cluster_job_has_no_worker_reaches_scancel(
        http: httpx.Client, settings: Settings, node_store: NodeStore, slurm_node: Settings,
        tmp_path: Path) -> None:
    """Cancelled while its worker is lost and before another took it over: the job stays
    cancel-requested, the next worker of the cluster relays it to scancel and the job
    ends cancelled once SLURM says so."""
    # workers of one cluster share its job folder (scripts, output, exit codes)
    node = pool_worker(settings, "e", tmp_path,
                       scheduler_job_dir=slurm_node.scheduler_job_dir)
    marker = tmp_path / "started"
    proc = start_cluster_worker(node, node_store, tmp_path)
    try:
        job_id = submit(http, argv=["bash", "-c", f"touch {marker}; exec sleep 300"],
                        resources={"labels": {"scheduler": "slurm", "pool": "e"}}, retries=0)
        native_id = job_state(http, job_id, "running")["native_id"]
        wait_until(marker.exists, 30, "the cluster job to start")
        proc.kill()
        proc.wait(timeout=10)
        response = http.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202, response.text  # asked; not over yet
        during = http.get(f"/api/v1/jobs/{job_id}").json()
        assert (during["state"], during["node"]) == ("running", "slurm-e"), during  # the gap
        assert squeue_state(native_id) == "RUNNING"
        job = job_state(http, job_id, timeout_s=90)
    finally:
        stop_process(proc)
        node_store.forget(node.node_name)
    assert (job["state"], job["native_id"], job["node"]) == ("cancelled", native_id,
                                                             "slurm-node"), job
    wait_for(lambda: (squeue_state(native_id), subprocess.run(
        ["sacct", "-c", "-n", "-P", "-j", native_id, "-o", "State"], capture_output=True,
        text=True).stdout), lambda s: "CANCELLED" in s[0] + s[1], 30,
        "SLURM to record the cancel (squeue, sacct)")
    assert any("cancel sent to slurm job" in e["data"].get("message", "")
               for e in events(http, job_id) if e["type"] == "info")


def pool_worker(settings: Settings, pool: str, directory: Path, **update: Any) -> Settings:
    """An extra SLURM worker ``slurm-<pool>`` that only jobs asking for ``pool`` reach."""
    return settings.model_copy(update={
        "node_name": f"slurm-{pool}", "scheduler": "slurm", "node_labels": {"pool": pool},
        "scheduler_job_dir": directory / "jobs", "scheduler_poll_s": 0.3,
        "scheduler_poll_max_s": 1.0, **update})


def submit_to_pool(http: httpx.Client, pool: str, marker: Path, seconds: int) -> str:
    """A cluster job for ``pool`` that touches ``marker`` when it starts, then sleeps."""
    return submit(http, argv=["bash", "-c", f"touch {marker}; sleep {seconds}; exit 0"],
                  resources={"labels": {"scheduler": "slurm", "pool": pool}}, retries=1)


def cluster_jobs_named(prefix: str) -> set[str]:
    """Ids of every SLURM job (queued, running or finished) whose name starts with prefix."""
    listed = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j"], capture_output=True,
                            text=True).stdout.splitlines()
    finished = subprocess.run(["sacct", "-c", "-n", "-P", "-o", "JobID,JobName"],
                              capture_output=True, text=True).stdout.splitlines()
    return {line.split("|")[0] for line in listed + finished
            if "|" in line and line.split("|")[1].startswith(prefix)}


def squeue_state(native_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-t", "all", "-j", native_id, "-o", "%T"],
                          capture_output=True, text=True).stdout.strip()


def test_directive_injection_is_refused_at_submission(http: httpx.Client) -> None:
    response = http.post("/api/v1/jobs", json={
        "argv": ["true"], "resources": {"labels": {"scheduler": "slurm"}},
        "cluster": {"queue": "debug\n#SBATCH --uid=0"}})
    assert response.status_code == 422, response.text
    assert "queue" in json.dumps(response.json())

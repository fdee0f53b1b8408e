"""simfarm.compat.pyedb and submit_local_job behave as PyEDB documents them."""

from __future__ import annotations

import asyncio
import http.server
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from simfarm.compat.pyedb import (
    JobManager,
    JobManagerHandler,
    JobStatus,
    JobSubmissionError,
    SchedulerType,
    create_hfss_config,
)
from tests.helpers import (
    FAKES,
    ROOT,
    free_port,
    start_worker,
    stop_process,
    wait_for,
    wait_until,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "antenna.aedt"
    path.write_text("$begin 'Setup1'\nMaximumPasses=5\n$end 'Setup1'\n")
    return path


def test_handler_attached_to_a_running_farm(gateway: str, hfss_node: Settings,
                                            project: Path) -> None:
    handler = JobManagerHandler(url=gateway)
    expected = SchedulerType.SLURM if shutil.which("sinfo") else (
        SchedulerType.LSF if shutil.which("bhosts") else SchedulerType.NONE)
    assert handler.scheduler_type is expected  # detected as PyEDB does
    with pytest.raises(RuntimeError, match="not started"):
        handler.submit_job(create_hfss_config(project_path=str(project)))
    handler.start_service()
    assert handler.started and handler.url == gateway
    config = handler.create_simulation_config(str(project), cpu_cores=2, user="bob",
                                              scheduler_type="none")
    assert config.jobid.startswith("antenna_")
    job_id = handler.submit_job(config, priority=1)
    assert job_id == config.jobid
    assert handler.wait_until_done(job_id) == "completed"
    assert handler.cancel_job(job_id) is False  # already finished
    assert handler.manager is not None
    info = handler.manager.jobs[job_id]
    assert info.status == JobStatus.COMPLETED and info.status == "completed"
    assert info.return_code == 0 and info.priority == 1
    handler.close()
    assert not handler.started
    assert httpx.get(f"{gateway}/api/v1/health").status_code == 200  # not ours to stop


def test_handler_reports_refusal_clearly(gateway: str, hfss_node: Settings,
                                         project: Path) -> None:
    handler = JobManagerHandler(version="2019.1", url=gateway)
    handler.start_service()
    with pytest.raises(JobSubmissionError, match=r"no worker node has AEDT 2019\.1"):
        handler.submit_job(create_hfss_config(project_path=str(project)))
    handler.close()


def test_async_job_manager(gateway: str, hfss_node: Settings, project: Path) -> None:
    async def scenario() -> str:
        manager = JobManager(url=gateway)
        config = create_hfss_config(project_path=str(project),
                                    scheduler_type="NONE",  # type: ignore[arg-type]
                                    setup_name="Setup1", design_name="main")
        job_id = await manager.submit_job(config, priority=5)
        await manager.wait_until_all_done()
        return job_id

    job_id = asyncio.run(scenario())
    assert JobManager(url=gateway).jobs[job_id].status == "completed"


def _example_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIMFARM_", "ANSYSEM_ROOT", "AWP_ROOT", "PYEDB_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "SIMFARM_STATE_DIR": str(tmp_path / "state"),
        "PYEDB_JOB_MANAGER_PORT": str(free_port()),
        "ANSYSEM_ROOT252": str(FAKES),
        "FAKE_ANSYSEDT_SECONDS": "0.3",
        # The example asks for 16 cores; its job reserves them, so the private worker
        # declares 16 (a smaller node refuses it: test_hfss_cores.py).
        "SIMFARM_NODE_CORES": "16",
    })
    return env


def test_pyedb_example_runs_unchanged_on_a_private_service(tmp_path: Path) -> None:
    """examples/pyedb_local_job.py is PyEDB's documented script with only the import
    changed: it starts its own service (Redis, gateway, worker), solves, and stops it."""
    (tmp_path / r"D:\Jobs\my_design.aedb").mkdir()  # its Windows path, as a Linux file name
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "pyedb_local_job.py")],
                          cwd=tmp_path, env=_example_env(tmp_path), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "submitted job_id" in done.stdout
    assert "job finished with status: completed" in done.stdout
    assert (tmp_path / r"D:\Jobs\my_design.aedtresults").is_dir()
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if str(tmp_path / "state") in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


# --- submit_local_job ---------------------------------------------------------


def run_cli(*args: str, module: str = "simfarm.compat.submit_local_job",
            **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", module, *args],
                          env=full, capture_output=True, text=True, timeout=60)


def test_submit_local_job_queues_and_returns(gateway: str, hfss_node: Settings,
                                             project: Path) -> None:
    port = gateway.rsplit(":", 1)[1]
    done = run_cli("--project-path", str(project), "--num-cores", "2",
                   PYEDB_JOB_MANAGER_HOST="127.0.0.1", PYEDB_JOB_MANAGER_PORT=port)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split()[1]
    listed = httpx.get(f"{gateway}/api/jobs").json()
    job = next(j for j in listed if j["id"] == job_id)
    assert job["config"]["machine_nodes"][0]["cores"] == 2
    assert job["status"] in ("queued", "running", "completed")


def test_submit_local_job_validation_and_connection_errors(tmp_path: Path,
                                                           project: Path) -> None:
    missing = run_cli("--project-path", str(tmp_path / "none.aedb"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    cores = run_cli("--project-path", str(project), "--num-cores", "0")
    assert cores.returncode == 1 and "--num-cores must be positive" in cores.stderr
    port = run_cli("--project-path", str(project), "--port", "http")
    assert port.returncode == 1
    unreachable = run_cli("--project-path", str(project), "--host", "127.0.0.1",
                          "--port", str(free_port()))
    assert unreachable.returncode == 1 and "cannot reach the job manager" in unreachable.stderr
    usage = run_cli()
    assert usage.returncode == 2  # argparse: --project-path is required


class _Broken(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "boom"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def broken_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_submit_local_job_server_error_is_exit_2(broken_server: int, project: Path) -> None:
    done = run_cli("--project-path", str(project), "--host", "127.0.0.1",
                   "--port", str(broken_server))
    assert done.returncode == 2 and "boom" in done.stderr


# --- submit_job_on_scheduler ----------------------------------------------------


def run_scheduler_cli(*args: str, gateway: str) -> subprocess.CompletedProcess[str]:
    port = gateway.rsplit(":", 1)[1]
    return run_cli(*args, "--host", "127.0.0.1", "--port", port,
                   module="simfarm.compat.submit_job_on_scheduler")


def test_submit_job_on_scheduler_refuses_what_no_cluster_can_take(
        gateway: str, worker: subprocess.Popen[bytes], project: Path) -> None:
    """The session farm has no worker attached to a scheduler."""
    none = run_scheduler_cli("--project-path", str(project), gateway=gateway)
    assert none.returncode == 1 and "attached to a cluster scheduler" in none.stderr
    pbs = run_scheduler_cli("--project-path", str(project), "--scheduler", "pbs",
                            gateway=gateway)
    assert pbs.returncode == 1 and "job rejected (422)" in pbs.stderr
    nodes = run_scheduler_cli("--project-path", str(project), "--nodes", "0", gateway=gateway)
    assert nodes.returncode == 1 and "must be positive" in nodes.stderr
    walltime = run_scheduler_cli("--project-path", str(project), "--time", "1:99:00",
                                 gateway=gateway)
    assert walltime.returncode == 1 and "time" in walltime.stderr
    missing = run_scheduler_cli("--project-path", str(project.with_suffix(".aedb")),
                                gateway=gateway)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    down = run_scheduler_cli("--project-path", str(project),
                             gateway=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 2 and "cannot reach the job manager" in down.stderr


@pytest.fixture
def lsf_worker(settings: Settings, node_store: NodeStore, gateway: str,
               tmp_path: Path) -> Iterator[Settings]:
    """A worker attached to the FAKE LSF (tests/fakes/lsf), AEDT being the FAKE ansysedt."""
    node = settings.model_copy(update={
        "node_name": "pyedb-lsf", "scheduler": "lsf", "scheduler_bin_dir": FAKES / "lsf",
        "scheduler_job_dir": tmp_path / "jobs", "scheduler_poll_s": 0.3,
        "scheduler_poll_max_s": 1.0})
    proc = start_worker(node, tmp_path / "worker.log", ANSYSEM_ROOT252=str(FAKES),
                        SIMFARM_FAKE_CLUSTER_DIR=str(tmp_path / "fake-lsf"),
                        SIMFARM_FAKE_PEND_S="0.2", FAKE_ANSYSEDT_SECONDS="0.2")

    def registered() -> bool:
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "worker.log").read_text()[-3000:])
        found = node_store.get("pyedb-lsf")
        return found is not None and found.alive and found.cores_total > 0

    wait_until(registered, 60, "the LSF worker")
    yield node
    stop_process(proc)
    node_store.forget("pyedb-lsf")  # a registered lsf node, even a stopped one, admits lsf jobs


def test_submit_job_on_scheduler_runs_the_project_on_the_farms_cluster(
        lsf_worker: Settings, gateway: str, project: Path) -> None:
    done = run_scheduler_cli("--project-path", str(project), "--partition", "short",
                             "--nodes", "1", "--cores-per-node", "2", gateway=gateway)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Job ") and " queued on lsf partition short at " in done.stdout
    job_id = done.stdout.split()[1]
    job = wait_for(lambda: httpx.get(f"{gateway}/api/v1/jobs/{job_id}").json(),
                   lambda j: j["state"] in ("completed", "failed", "cancelled"), 60,
                   "the cluster job to end")
    assert (job["state"], job["node"], job["exit_code"]) == ("completed", "pyedb-lsf", 0), job
    config = job["spec"]["hfss"]
    assert config["scheduler_type"] == "lsf" and config["auto"] is True
    options = config["scheduler_options"]
    assert (options["queue"], options["nodes"], options["cores_per_node"]) == ("short", 1, 2)
    script = next((lsf_worker.scheduler_job_dir or Path()).glob(f"{job_id}/*.sh")).read_text()
    assert "#BSUB -q short" in script and "-auto" in script
    assert project.with_suffix(".aedtresults").is_dir()


# --- PyEDB's config helpers -----------------------------------------------------


def test_config_command_helpers_and_direct_run(project: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSYSEM_ROOT252", str(FAKES))
    monkeypatch.setenv("FAKE_ANSYSEDT_SECONDS", "0.05")
    config = create_hfss_config(project_path=str(project), jobid="direct_1",
                                design_name="main", setup_name="Setup1")
    argv = config.generate_command_list()
    assert argv[0] == str(FAKES / "ansysedt")
    assert argv[1:3] == ["-jobid", "direct_1"]
    assert argv[-3:] == ["-batchsolve", "main:Nominal:Setup1", str(project)]
    assert shlex.split(config.generate_command_string()) == argv
    result = config.run_simulation()
    assert isinstance(result, subprocess.CompletedProcess)
    assert result.returncode == 0
    assert "Normal completion of simulation" in result.stdout  # -monitor output
    round_trip = type(config).from_dict(config.to_dict())
    assert round_trip.generate_command_list() == argv

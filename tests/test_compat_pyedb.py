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
from simfarm.compat.pyedb import (
    JobManager,
    JobManagerHandler,
    JobStatus,
    JobSubmissionError,
    SchedulerType,
    create_hfss_config,
)
from tests.helpers import FAKES, ROOT, free_port


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


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "simfarm.compat.submit_local_job", *args],
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

"""Supervised embedded farm: ``simfarm up`` however it ends leaves no part running, one
farm per state folder, jobs handed back in order.

Every test runs real ``simfarm up`` processes (redis-server, gateway, Celery worker,
guardian) in a state folder of its own and finds the farm's processes by the state
folder's lock file, which each of them holds open.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests import embedded_farm
from tests.chaos import RECORDER
from tests.embedded_farm import Up, farm_processes
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")


@pytest.fixture
def up_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield embedded_farm.up_env(tmp_path / "state")
    left = farm_processes(tmp_path / "state")
    for proc in left:  # a failed test must not leave its farm running
        proc.kill()
    assert not left, f"farm processes left: {left}"


def recorder(folder: Path, seconds: float) -> list[str]:
    return [sys.executable, "-c", RECORDER, str(folder), str(seconds)]


def runs(folder: Path, job_id: str) -> list[list[str]]:
    """One list of record words per line of the job's run record."""
    path = folder / job_id
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_kill_9_of_up_stops_every_part_and_the_next_up_carries_on(
        up_env: dict[str, str], tmp_path: Path) -> None:
    record = tmp_path / "runs"
    record.mkdir()
    first = Up(up_env).wait_up()
    done = first.submit(sys.executable, "-c", "print('before the kill')")
    first.wait_state(done, "completed")
    long_job = first.submit(*recorder(record, 2.0))
    first.wait_state(long_job, "running")
    wait_until(lambda: runs(record, long_job), 10, "the job's first run to start")
    parts = farm_processes(first.state_dir)
    names = " ".join(" ".join(p.cmdline()) for p in parts)
    assert all(n in names for n in ("redis-server", "simfarm.gateway.server",
                                    "simfarm.workers.main", "simfarm.client.guardian"))

    first.proc.kill()  # SIGKILL: no handler runs in simfarm up
    _gone, alive = psutil.wait_procs(parts, timeout=30)
    assert not alive, f"still running after simfarm up was killed: {alive}"
    assert runs(record, long_job)[-1][1] != "end", "the job's run was not stopped"

    second = Up(up_env).wait_up()
    try:
        assert second.job(done)["state"] == "completed"  # nothing acknowledged was lost
        finished = second.wait_state(long_job, "completed", timeout_s=60)
        assert finished["exit_code"] == 0
        starts = [r for r in runs(record, long_job) if r[1] == "start"]
        ends = [r for r in runs(record, long_job) if r[1] == "end"]
        assert len(starts) == 2 and len(ends) == 1  # stopped once, then run to the end once
    finally:
        second.proc.send_signal(signal.SIGHUP)  # a hang-up stops the farm in order too
        assert second.proc.wait(timeout=60) == 0
    assert not farm_processes(second.state_dir)


def redis_servers(state_dir: Path) -> list[psutil.Process]:
    return [p for p in farm_processes(state_dir) if "redis-server" in " ".join(p.cmdline())]


def test_one_farm_per_folder_and_ctrl_c_hands_the_running_job_back(
        up_env: dict[str, str], tmp_path: Path) -> None:
    record = tmp_path / "runs"
    record.mkdir()
    first = Up(up_env).wait_up()
    redis_before = redis_servers(first.state_dir)
    env = dict(up_env, SIMFARM_GATEWAY_PORT=str(free_port()))
    again = subprocess.run([sys.executable, "-m", "simfarm.client.cli", "up"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1
    assert "in use by another simfarm" in again.stderr and first.url in again.stderr
    assert redis_servers(first.state_dir) == redis_before and len(redis_before) == 1

    # PyEDB's handler, pointed at the same state folder, uses the running farm and
    # leaves it (and its embedded.json) alone when it closes.
    script = ("import sys\nfrom simfarm.compat.pyedb import JobManagerHandler\n"
              "h = JobManagerHandler(port=int(sys.argv[1]))\n"
              "h.start_service(); print(h.url); h.close()\n")
    attached = subprocess.run([sys.executable, "-c", script, str(free_port())], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.strip() == first.url
    assert json.loads((first.state_dir / "embedded.json").read_text())["url"] == first.url
    assert redis_servers(first.state_dir) == redis_before

    job_id = first.submit(*recorder(record, 1.5), retries=0)
    first.wait_state(job_id, "running")
    wait_until(lambda: runs(record, job_id), 10, "the job to start")
    os.killpg(first.proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
    assert first.proc.wait(timeout=60) == 0
    assert not farm_processes(first.state_dir)

    second = Up(up_env).wait_up()
    try:
        job = second.job(job_id)
        assert job["state"] in ("pending", "scheduled", "running", "completed"), job
        assert second.wait_state(job_id, "completed", timeout_s=60)["exit_code"] == 0
    finally:
        second.stop()


def test_signal_while_starting_stops_what_started(up_env: dict[str, str]) -> None:
    up = Up(up_env)
    state_dir = up.state_dir
    wait_until(lambda: any("redis-server" in " ".join(p.cmdline())
                           for p in farm_processes(state_dir)), 30, "redis-server to start")
    parts = farm_processes(state_dir)
    up.proc.send_signal(signal.SIGTERM)
    out, err = up.proc.communicate(timeout=60)
    assert up.proc.returncode == 0 and "stopped while starting" in err, (out, err)
    _gone, alive = psutil.wait_procs(parts, timeout=10)
    assert not alive and not farm_processes(state_dir)


def test_next_up_stops_the_parts_a_dead_farm_left(up_env: dict[str, str]) -> None:
    first = Up(up_env).wait_up()
    parts = farm_processes(first.state_dir)
    guardian = next(p for p in parts if "simfarm.client.guardian" in " ".join(p.cmdline()))
    guardian.kill()  # the guardian gone too (e.g. the OOM killer took both)
    first.proc.kill()
    guardian.wait(timeout=10)
    first.proc.wait(timeout=10)
    left = [p for p in parts if p.is_running() and p.pid not in (guardian.pid, first.proc.pid)]
    assert left, "nothing was left to clean up"

    second = Up(dict(up_env, SIMFARM_GATEWAY_PORT=str(free_port())))
    try:
        second.wait_up()
        _gone, alive = psutil.wait_procs(left, timeout=5)
        assert not alive, f"leftovers still running: {alive}"
        assert httpx.get(f"{second.url}/api/v1/health", timeout=5).json()["nodes_alive"] == 1
    finally:
        err = second.stop()
    assert "is gone; stopping what it left" in err


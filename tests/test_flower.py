"""`simfarm flower` starts Celery Flower on the farm's broker, and Flower's API shows
simfarm's tasks under a readable name with the job id in their arguments."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simfarm.common.settings import Settings
from tests.helpers import child_env, free_port, stop_process, wait_for, wait_until


@pytest.fixture
def flower(settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path / "flower.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "simfarm.client.cli", "flower", "--port", str(port)],
            env=child_env(settings, FLOWER_UNAUTHENTICATED_API="true"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"

    def _up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"flower exited:\n{log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(_up, 60, "flower")
        yield url
    finally:
        stop_process(proc)


def _flower_task_for(flower: str, job_id: str) -> dict[str, Any] | None:
    tasks = httpx.get(f"{flower}/api/tasks", timeout=10).json()
    return next((t for t in tasks.values() if f"job={job_id}" in (t.get("args") or "")), None)


def test_flower_shows_run_job_tasks_with_job_ids(flower: str, farm: httpx.Client) -> None:
    # Flower only sees events sent after its receiver connected: submit until it has one.
    def run_one() -> tuple[str, dict[str, Any] | None]:
        job = farm.post("/api/v1/jobs", json={"argv": ["true"], "name": "flower-check"}).json()
        wait_for(lambda: farm.get(f"/api/v1/jobs/{job['id']}").json()["state"],
                 lambda s: s == "completed", 30, "the job to complete")
        try:
            task = wait_for(lambda: _flower_task_for(flower, job["id"]),
                            lambda t: t is not None and t.get("state") == "SUCCESS", 3,
                            "flower to record the task")
        except AssertionError:
            task = None
        return job["id"], task

    job_id, task = wait_for(run_one, lambda found: found[1] is not None, 40,
                            "a run_job task in Flower")
    assert task is not None
    assert task["name"] == "simfarm.run_job"
    assert task["args"] == f"(job={job_id}, attempt=1, name='flower-check')"
    node = farm.get(f"/api/v1/jobs/{job_id}").json()["node"]
    assert task["worker"].startswith(f"{node}@")  # Celery's name of the node's worker
    page = httpx.get(f"{flower}/tasks", timeout=10)
    assert page.status_code == 200 and "args" in page.text
    # read-only by default: revoking through Flower is refused (simfarm cancels jobs itself)
    revoke = httpx.post(f"{flower}/api/task/revoke/{task['uuid']}", timeout=10)
    assert revoke.status_code == 403


def test_celery_command_line_reaches_the_farm_workers(settings: Settings, worker: Any) -> None:
    # docs/monitoring.md: Celery's own tools find the farm's app through celery_cli
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "simfarm.workers.celery_cli", "inspect", "ping",
         "--timeout", "5"],
        env=child_env(settings), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{settings.node_name}@" in out.stdout and "pong" in out.stdout

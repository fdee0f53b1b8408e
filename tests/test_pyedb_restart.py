"""PyEDB kept jobs in a dict in memory; simfarm loses nothing when everything restarts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.hfss import create_hfss_config
from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from tests.conftest import RedisServer
from tests.helpers import FAKES, free_port, start_gateway, start_worker, stop_process, wait_for


class Stack:
    """A private Redis + gateway + HFSS worker that can be stopped and started again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisServer(root / "redis")
        self.settings = Settings(redis_url=self.redis.url, state_dir=root / "state",
                                 gateway_port=free_port(), node_name="restart-node",
                                 node_cores=2, worker_concurrency=1, heartbeat_s=0.5,
                                 heartbeat_ttl_s=3.0)
        self.gateway: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.settings.gateway_port}"

    def start(self, worker: bool = True) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        if self.redis.proc is None:
            self.redis.start()
        self.gateway = start_gateway(self.settings, self.root / "gateway.log")
        if worker:
            self.start_worker()

    def start_worker(self) -> None:
        self.worker = start_worker(self.settings, self.root / "worker.log",
                                   ANSYSEM_ROOT252=str(FAKES), FAKE_ANSYSEDT_SECONDS="0.2")
        nodes = NodeStore(redis.Redis.from_url(self.redis.url), self.settings.key_prefix)
        wait_for(lambda: nodes.is_alive("restart-node"), bool, 60, "the restart-node worker")

    def stop(self) -> None:
        for proc in (self.worker, self.gateway):
            if proc is not None:
                stop_process(proc)
        self.worker = self.gateway = None
        self.redis.stop()  # SIGTERM: Redis writes its AOF before exiting


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    s.start()
    yield s
    s.stop()


def jobs(url: str) -> dict[str, dict[str, Any]]:
    return {j["id"]: j for j in httpx.get(f"{url}/api/jobs", timeout=10).json()}


def test_jobs_survive_a_full_restart(stack: Stack, tmp_path: Path) -> None:
    project = tmp_path / "keep.aedb"
    project.mkdir()
    config = create_hfss_config(project_path=str(project), jobid="done_before").to_dict()
    assert httpx.post(f"{stack.url}/jobs/submit", json={"config": config}).status_code == 200
    wait_for(lambda: jobs(stack.url)["done_before"], lambda j: j["status"] == "completed",
             30, "the first job to complete")

    # A running job and a queued one (the node runs one job at a time), then everything
    # stops and starts again.
    long_project = tmp_path / "long.aedb"
    long_project.mkdir()
    long_project.with_suffix(".fake.json").write_text('{"seconds": 3}')
    running = create_hfss_config(project_path=str(long_project), jobid="running_before")
    assert httpx.post(f"{stack.url}/jobs/submit",
                      json={"config": running.to_dict()}).status_code == 200
    wait_for(lambda: jobs(stack.url)["running_before"], lambda j: j["status"] == "running",
             30, "the long job to run")
    queued = create_hfss_config(project_path=str(project), jobid="queued_before").to_dict()
    response = httpx.post(f"{stack.url}/jobs/submit", json={"config": queued})
    assert response.status_code == 200, response.text
    assert jobs(stack.url)["queued_before"]["status"] == "queued"
    stack.stop()
    stack.start()

    after = jobs(stack.url)
    before = after["done_before"]
    assert (before["status"], before["return_code"]) == ("completed", 0)
    assert before["progress"]["converged"] is True
    assert before["config"]["jobid"] == "done_before"
    for job_id in ("running_before", "queued_before"):
        finished = wait_for(lambda job_id=job_id: jobs(stack.url)[job_id],  # type: ignore[misc]
                            lambda j: j["status"] in ("completed", "failed"), 60,
                            f"{job_id} to finish after the restart")
        assert (finished["status"], finished["return_code"]) == ("completed", 0), finished

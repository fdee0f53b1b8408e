"""Floating licences across a local node and the real SLURM: one farm pool for both, so
together they never hold more than the pool; a SLURM job draws from it when it is
placed and carries its licences to SLURM (``sbatch --licenses``, counted by SLURM's own
``Licenses=`` of tests/slurm/slurm-up.sh)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from tests.clusters.conftest import SlurmCluster
from tests.conftest import RedisServer
from tests.helpers import free_port, start_gateway, start_worker, stop_process, wait_for

pytestmark = pytest.mark.timeout(180)
POOLS = [{"name": "anshpc", "count": 4, "cluster": "simfarm_anshpc"}]


@pytest.fixture(scope="module")
def farm(slurm_cluster: SlurmCluster,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("licences-slurm")
    server = RedisServer(root / "redis", appendonly=False)
    server.start()
    settings = Settings.model_validate({
        "redis_url": server.url, "state_dir": root / "state", "gateway_port": free_port(),
        "node_name": "gateway", "heartbeat_s": 0.3, "heartbeat_ttl_s": 3.0,
        "licenses": POOLS, "license_poll_s": 0.3})
    gateway = start_gateway(settings, root / "gateway.log")
    nodes = NodeStore(redis.Redis.from_url(server.url))
    procs = []
    try:
        for name, extra in (("local", {"node_cores": 4, "worker_concurrency": 2}),
                            ("slurm-node", {"scheduler": "slurm", "worker_concurrency": 4,
                                            "scheduler_job_dir": root / "jobs",
                                            "scheduler_poll_s": 0.3,
                                            "scheduler_poll_max_s": 1.0})):
            node = settings.model_copy(update={"node_name": name, **extra})
            procs.append(start_worker(node, root / f"{name}.log"))
            wait_for(lambda n=name: nodes.get(n), lambda i: i is not None and i.alive
                     and i.cores_total > 0, 60, f"{name} to register")
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}",
                          timeout=30) as http:
            yield http
    finally:
        for proc in procs:
            stop_process(proc)
        stop_process(gateway)
        server.stop()


def submit(http: httpx.Client, **spec: Any) -> str:
    response = http.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(http.get(f"/api/v1/jobs/{job_id}").json())


def test_local_and_slurm_jobs_share_one_pool_and_slurm_counts_it_too(
        farm: httpx.Client, tmp_path: Path) -> None:
    def hold(release: Path) -> list[str]:
        return [sys.executable, "-c", "import os, sys, time\n"
                "while not os.path.exists(sys.argv[1]): time.sleep(0.05)", str(release)]

    local = submit(farm, argv=hold(tmp_path / "local"), resources={"licenses": {"anshpc": 3},
                                               "labels": {"os": "linux"}, "cores": 1})
    wait_for(lambda: job(farm, local), lambda j: j["state"] == "running", 30, "local job")
    on_slurm = submit(farm, argv=hold(tmp_path / "slurm"), resources={"licenses": {"anshpc": 2},
                                                  "labels": {"scheduler": "slurm"}},
                      cluster={"time": "00:05:00"})
    waiting = wait_for(lambda: job(farm, on_slurm),
                       lambda j: (j["reason"] or "").startswith("waiting for 2 anshpc"), 30,
                       "the SLURM job to wait for the local job's licences")
    assert waiting["state"] == "pending" and waiting["native_id"] is None  # not submitted
    assert waiting["reason"].startswith("waiting for 2 anshpc (1 free of 4)")
    (tmp_path / "local").touch()
    assert wait_for(lambda: job(farm, local), lambda j: j["state"] == "completed", 30,
                    "local job to end")["licenses_held"] is None
    scheduled = wait_for(lambda: job(farm, on_slurm), lambda j: j["native_id"], 60,
                         "the SLURM job to be submitted")
    assert scheduled["licenses_held"] == {"anshpc": 2}
    info = subprocess.run(["scontrol", "show", "job", "-o", scheduled["native_id"]],
                          capture_output=True, text=True, check=True, timeout=30).stdout
    fields = dict(item.split("=", 1) for item in info.split() if "=" in item)
    assert fields["Licenses"].replace("*", ":") == "simfarm_anshpc:2"
    pools = farm.get("/api/v1/licenses").json()["licenses"]
    assert (pools[0]["held"], pools[0]["free"]) == (2, 2)
    (tmp_path / "slurm").touch()
    done = wait_for(lambda: job(farm, on_slurm), lambda j: j["state"] == "completed", 90,
                    "the SLURM job to end")
    assert done["licenses_held"] is None
    assert farm.get("/api/v1/licenses").json()["licenses"][0]["held"] == 0

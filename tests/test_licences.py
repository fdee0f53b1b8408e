"""Floating licences end to end: one private redis-server, the real gateway over HTTP and,
from the dispatch tests on, real worker processes whose dispatcher leader polls the FAKE
FlexLM server (tests/fakes/flexlm) with the FAKE lmutil.

Pools of the farm: ``anshpc`` (16, on 1055@lic01), ``electronics_desktop`` (4, on
1055@lic01) and ``token`` (2, no server: a static count)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from tests.conftest import RedisServer
from tests.helpers import FAKES, FarmApi, free_port, start_gateway, stop_process

pytestmark = pytest.mark.timeout(180)
SERVER = "1055@lic01"
POOLS = [{"name": "anshpc", "count": 16, "server": SERVER},
         {"name": "electronics_desktop", "count": 4, "server": SERVER},
         {"name": "token", "count": 2}]


@dataclass
class LicenceFarm(FarmApi):
    settings: Settings
    root: Path
    http: httpx.Client
    jobs: JobStore
    nodes: NodeStore
    flexlm: Path

    def server_state(self, status: str = "up", **features: int) -> None:
        """What the FAKE license server says from now on."""
        folder = self.flexlm / SERVER
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "server.json.tmp"
        tmp.write_text(json.dumps({"status": status, "features": features}))
        tmp.replace(folder / "server.json")

    def refused(self, body: dict[str, Any], route: str = "/api/v1/jobs") -> dict[str, Any]:
        response = self.http.post(route, json=body)
        assert response.status_code == 422, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LicenceFarm]:
    root = tmp_path_factory.mktemp("licences")
    server = RedisServer(root / "redis", appendonly=False)
    server.start()
    flexlm = root / "flexlm"
    settings = Settings.model_validate({
        "redis_url": server.url, "state_dir": root / "state", "gateway_port": free_port(),
        "node_name": "gateway", "heartbeat_s": 0.3, "heartbeat_ttl_s": 3.0,
        "kill_grace_s": 1.0, "licenses": POOLS,
        "license_lmutil": str(FAKES / "flexlm" / "lmutil"), "license_poll_s": 0.3,
        "license_grace_s": 2.0, "license_poll_timeout_s": 2.0})
    gateway = start_gateway(settings, root / "gateway.log", FAKE_FLEXLM_DIR=str(flexlm))
    connection = redis.Redis.from_url(server.url)
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30) as http:
        farm = LicenceFarm(settings, root, http, JobStore(connection), NodeStore(connection),
                           flexlm)
        farm.server_state(anshpc=16, electronics_desktop=4)
        try:
            yield farm
        finally:
            stop_process(gateway)
            server.stop()


def hfss_job(root: Path, cores: int, **extra: Any) -> dict[str, Any]:
    project = root / "board.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=2\n$end 'Setup1'\n")
    return {"kind": "hfss", "resources": {"cores": cores}, "hfss": {
        "project_path": str(project), "machine_nodes": [{"hostname": "localhost", "cores": -1}]},
        **extra}


def test_an_hfss_job_asks_for_the_licences_its_cores_check_out(farm: LicenceFarm) -> None:
    job = farm.job(farm.submit(**hfss_job(farm.root, 12)))
    assert job["spec"]["resources"]["licenses"] == {"anshpc": 8, "electronics_desktop": 1}
    packed = farm.job(farm.submit(**hfss_job(farm.root, 12, licensing={"scheme": "pack"})))
    # no anshpc_pack pool on this farm: only the solver licence is counted
    assert packed["spec"]["resources"]["licenses"] == {"electronics_desktop": 1}
    for job_id in (job["id"], packed["id"]):
        farm.http.delete(f"/api/v1/jobs/{job_id}")


def test_more_of_a_pool_than_it_will_ever_have_is_refused_at_submit(farm: LicenceFarm) -> None:
    body = farm.refused({"argv": ["true"], "resources": {"licenses": {"token": 3}}})
    assert body["error"] == "unsatisfiable"
    assert body["fields"] == [{"field": "resources.licenses.token", "reason": (
        "needs 3 token licences but the farm's token pool has 2: it could never start")}]
    # 16 parallel variations of 4 cores: 120 anshpc, the pool has 16
    sweep = farm.refused(hfss_job(farm.root, 64, licensing={"parallel_variations": 16}))
    assert sweep["fields"][0]["field"] == "resources.licenses.anshpc"
    assert f"anshpc pool on {SERVER} has 16" in sweep["fields"][0]["reason"]
    # PyEDB's route computes the same: 24 cores need 20 anshpc
    config = hfss_job(farm.root, 1)["hfss"] | {
        "jobid": "too_many_cores", "machine_nodes": [{"hostname": "localhost", "cores": 24,
                                                      "max_cores": 24}]}
    pyedb = farm.refused({"config": config}, "/jobs/submit")
    assert "needs 20 anshpc licences" in pyedb["error"]
    batch = farm.refused({"jobs": [{"argv": ["true"]},
                                   {"argv": ["true"], "resources": {"licenses": {"token": 9}}}]},
                         "/api/v1/jobs/batch")
    assert batch["fields"][0]["field"] == "jobs.1.resources.licenses.token"

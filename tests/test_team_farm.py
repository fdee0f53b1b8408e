"""A farm shared by a team, with real processes: two worker processes (nodes ``n1`` and
``n2``, 2 cores and 2 slots each, labelled with their own name), one private
redis-server, the real gateway over HTTP in token mode. Users alice (account cfd) and
bob (account em), admin root. Drain and resume a node.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.accounts import Account
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.tokens import TokenEntry, hash_token
from tests.conftest import RedisServer
from tests.helpers import ROOT, free_port, start_gateway, start_worker, stop_process, wait_for

pytestmark = pytest.mark.timeout(180)

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789",
          "root": "root-token-0123456789"}
NODES = ("n1", "n2")


@dataclass
class Farm:
    """The running farm: one HTTP client per user, the stores, the processes."""

    settings: Settings
    root: Path
    users: dict[str, httpx.Client]
    nodes: NodeStore
    jobs: JobStore
    procs: dict[str, Any] = field(default_factory=dict)

    def submit(self, user: str, **spec: Any) -> str:
        response = self.users[user].post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.users["root"].get(f"/api/v1/jobs/{job_id}").json())

    def wait_state(self, job_id: str, *states: str, timeout_s: float = 30) -> dict[str, Any]:
        return wait_for(lambda: self.job(job_id), lambda j: j["state"] in states, timeout_s,
                        f"job {job_id} to be {'/'.join(states)}")

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``simfarm ARGS`` as ``user``."""
        env = {**os.environ, "SIMFARM_URL": str(self.users[user].base_url).rstrip("/"),
               "SIMFARM_TOKEN": TOKENS[user], "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "simfarm.client.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    def worker(self, name: str) -> dict[str, Any]:
        rows = self.users["root"].get("/api/v1/workers").json()["workers"]
        return next(dict(r) for r in rows if r["name"] == name)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("team")
    server = RedisServer(root / "redis", appendonly=False)
    server.start()
    settings = Settings(
        redis_url=server.url, state_dir=root / "state", gateway_port=free_port(),
        node_name="gateway", heartbeat_s=0.3, heartbeat_ttl_s=3.0, kill_grace_s=1.0,
        accounts=[Account(name="cfd", shares=1, users=("alice",)),
                  Account(name="em", shares=1, users=("bob",))],
        auth_tokens=[TokenEntry(user="alice", hash=hash_token(TOKENS["alice"])),
                     TokenEntry(user="bob", hash=hash_token(TOKENS["bob"])),
                     TokenEntry(user="root", hash=hash_token(TOKENS["root"]), admin=True)])
    gateway = start_gateway(settings, root / "gateway.log")
    connection = redis.Redis.from_url(server.url)
    url = f"http://127.0.0.1:{settings.gateway_port}"
    users = {name: httpx.Client(base_url=url, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
             for name, token in TOKENS.items()}
    farm = Farm(settings, root, users, NodeStore(connection), JobStore(connection))
    try:
        for name in NODES:
            node = settings.model_copy(update={
                "node_name": name, "node_cores": 2, "node_memory_mb": 4096,
                "worker_concurrency": 2, "node_labels": {"node": name}})
            farm.procs[name] = start_worker(node, root / f"{name}.log")
        for name in NODES:
            wait_for(lambda n=name: farm.nodes.is_alive(n), bool, 60,  # type: ignore[misc]
                     f"worker {name} to register")
        yield farm
    finally:
        for proc in farm.procs.values():
            stop_process(proc)
        stop_process(gateway)
        for client in users.values():
            client.close()
        server.stop()


def test_drain_lets_running_jobs_finish_and_sends_new_ones_elsewhere(farm: Farm) -> None:
    root = farm.users["root"]
    running = farm.submit("alice", argv=["sleep", "2"], resources={"labels": {"node": "n1"}})
    farm.wait_state(running, "running")
    refused = farm.users["alice"].post("/api/v1/workers/n1/drain", json={})
    assert refused.status_code == 403  # admins only
    drained = root.post("/api/v1/workers/n1/drain", json={"reason": "disk swap"})
    assert drained.status_code == 200, drained.text
    assert drained.json()["status"] == "draining"
    assert drained.json()["drain"]["by"] == "root"
    # new work goes to the other node while n1 still runs its job
    elsewhere = farm.submit("bob", argv=["true"])
    assert farm.wait_state(elsewhere, "completed")["node"] == "n2"
    # the running job is not disturbed; then n1 is drained
    assert farm.wait_state(running, "completed", "failed")["state"] == "completed"
    wait_for(lambda: farm.worker("n1")["status"], lambda s: s == "drained", 20, "n1 drained")
    pinned = farm.submit("bob", argv=["true"], resources={"labels": {"node": "n1"}})
    job = wait_for(lambda: farm.job(pinned), lambda j: "drained by root" in (j["reason"] or ""),
                   20, "the pinned job's reason to name the drain")
    assert job["state"] == "pending" and "disk swap" in job["reason"]
    metrics = root.get("/metrics").text
    assert 'simfarm_node_draining{node="n1"} 1.0' in metrics
    assert 'simfarm_node_draining{node="n2"} 0.0' in metrics
    listed = farm.cli("alice", "workers")
    assert listed.returncode == 0 and "drained by root: disk swap" in listed.stdout
    resumed = farm.cli("root", "resume", "n1", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert '"drain": null' in resumed.stdout
    assert farm.wait_state(pinned, "completed")["node"] == "n1"
    assert farm.worker("n1")["status"] in ("ready", "full")


def _pin(node: str, cores: int = 2) -> dict[str, Any]:
    return {"labels": {"node": node}, "cores": cores}


def test_held_jobs_wait_keep_their_place_and_are_released(farm: Farm) -> None:
    alice, bob, root = farm.users["alice"], farm.users["bob"], farm.users["root"]
    filler = farm.submit("bob", argv=["sleep", "2"], resources=_pin("n1"))
    farm.wait_state(filler, "running")
    first = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    held = alice.post(f"/api/v1/jobs/{first}/hold", json={"reason": "wrong mesh"})
    assert held.status_code == 200, held.text
    assert (held.json()["state"], held.json()["reason"]) == ("held", "held by alice: wrong mesh")
    assert bob.post(f"/api/v1/jobs/{first}/release").status_code == 404  # not his job
    second = farm.submit("alice", argv=["sleep", "2"], resources=_pin("n1"))
    late = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    # the held job is never dispatched: the one behind it starts once n1 is free
    farm.wait_state(second, "running")
    assert farm.job(first)["state"] == "held" and farm.job(late)["state"] == "pending"
    assert alice.post(f"/api/v1/jobs/{first}/release").json()["state"] == "pending"
    done = {j: farm.wait_state(j, "completed") for j in (first, late)}
    # back at its place in line: ahead of the job submitted while it was held
    assert done[first]["started_at"] < done[late]["started_at"]
    # a job an admin holds is released by an admin only; holding a running job is a 409
    # the filler holds n1 until it is cancelled: the released job is seen pending
    filler = farm.submit("bob", argv=["sleep", "60"], resources=_pin("n1"))
    farm.wait_state(filler, "running")
    assert bob.post(f"/api/v1/jobs/{filler}/hold").status_code == 409
    blocked = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    assert root.post(f"/api/v1/jobs/{blocked}/hold", json={"reason": "licence audit"}
                     ).json()["held_by"] == "root"
    cancelled = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    assert alice.post(f"/api/v1/jobs/{cancelled}/hold").json()["state"] == "held"
    assert alice.post(f"/api/v1/jobs/{cancelled}/cancel").json()["state"] == "cancelled"
    refused = farm.cli("alice", "release", blocked)
    assert refused.returncode == 1 and "only an admin releases it" in refused.stderr
    released = farm.cli("root", "release", blocked)
    assert released.returncode == 0 and "pending" in released.stdout, released.stderr
    assert bob.post(f"/api/v1/jobs/{filler}/cancel").status_code == 202
    farm.wait_state(blocked, "completed")


def test_a_sweep_is_held_and_released_as_a_whole(farm: Farm) -> None:
    bob = farm.users["bob"]
    filler = farm.submit("bob", argv=["sleep", "2"], resources=_pin("n2"))
    farm.wait_state(filler, "running")
    sweep = bob.post("/api/v1/sweeps", json={
        "template": {"argv": ["echo", "{x}"], "resources": _pin("n2")},
        "grid": {"x": [1, 2, 3]}, "throttle": 2}).json()
    held = bob.post(f"/api/v1/sweeps/{sweep['id']}/hold", json={"reason": "check inputs"})
    assert held.status_code == 200 and held.json()["held"] == 3, held.text
    assert bob.get(f"/api/v1/sweeps/{sweep['id']}").json()["state"] == "held"
    farm.wait_state(filler, "completed")
    assert {c["state"] for c in bob.get(f"/api/v1/sweeps/{sweep['id']}").json()["children"]
            } == {"held"}
    released = bob.post(f"/api/v1/sweeps/{sweep['id']}/release")
    assert (released.json()["changed"], released.json()["held"]) == (3, 0)
    final = wait_for(lambda: bob.get(f"/api/v1/sweeps/{sweep['id']}").json(),
                     lambda s: s["state"] == "completed", 30, "the sweep to complete")
    assert final["counts"]["completed"] == 3

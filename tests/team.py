"""A farm shared by a team, with real processes, for the tests of team features: two
worker processes (nodes ``n1`` and ``n2``, 2 cores and 2 slots each, labelled with their
own name), one private redis-server, the real gateway over HTTP in token mode with one
client per user (``root`` is the admin)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from simfarm.common.tokens import TokenEntry, hash_token
from tests.conftest import RedisServer
from tests.helpers import (
    ROOT,
    free_port,
    start_gateway,
    start_worker,
    stop_processes,
    wait_for,
)

NODES = ("n1", "n2")


@dataclass
class TeamFarm:
    """The running farm: one HTTP client per user, the processes."""

    settings: Settings
    root: Path
    tokens: Mapping[str, str]
    users: dict[str, httpx.Client]
    nodes: NodeStore
    wait_s: float  # how long wait_state waits by default
    procs: dict[str, Any] = field(default_factory=dict)

    def submit(self, user: str, **spec: Any) -> str:
        response = self.users[user].post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def batch(self, user: str, specs: list[dict[str, Any]]) -> list[str]:
        response = self.users[user].post("/api/v1/jobs/batch", json={"jobs": specs})
        assert response.status_code == 201, response.text
        return [str(j["id"]) for j in response.json()["jobs"]]

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.users["root"].get(f"/api/v1/jobs/{job_id}").json())

    def jobs(self, ids: list[str]) -> list[dict[str, Any]]:
        return [self.job(i) for i in ids]

    def wait_state(self, job_id: str, *states: str,
                   timeout_s: float | None = None) -> dict[str, Any]:
        return wait_for(lambda: self.job(job_id), lambda j: j["state"] in states,
                        self.wait_s if timeout_s is None else timeout_s,
                        f"job {job_id} to be {'/'.join(states)}")

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``simfarm ARGS`` as ``user``."""
        env = {**os.environ, "SIMFARM_URL": str(self.users[user].base_url).rstrip("/"),
               "SIMFARM_TOKEN": self.tokens[user], "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "simfarm.client.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    def worker(self, name: str) -> dict[str, Any]:
        rows = self.users["root"].get("/api/v1/workers").json()["workers"]
        return next(dict(r) for r in rows if r["name"] == name)


@contextlib.contextmanager
def team_farm(root: Path, tokens: Mapping[str, str], *, http_timeout_s: float,
              wait_s: float, worker_env: Mapping[str, Mapping[str, str]] | None = None,
              **settings: Any) -> Iterator[TeamFarm]:
    """Start the farm in ``root``: ``tokens`` (user -> token; ``root`` is the admin),
    ``settings`` on top of the farm's own, ``worker_env`` per node name."""
    server = RedisServer(root / "redis", appendonly=False)
    server.start()
    config = Settings(
        redis_url=server.url, state_dir=root / "state", gateway_port=free_port(),
        node_name="gateway", heartbeat_s=0.3, heartbeat_ttl_s=3.0, kill_grace_s=1.0,
        auth_tokens=[TokenEntry(user=u, hash=hash_token(t), admin=u == "root")
                     for u, t in tokens.items()], **settings)
    gateway = start_gateway(config, root / "gateway.log")
    connection = redis.Redis.from_url(server.url)
    url = f"http://127.0.0.1:{config.gateway_port}"
    users = {name: httpx.Client(base_url=url, timeout=http_timeout_s,
                                headers={"Authorization": f"Bearer {token}"})
             for name, token in tokens.items()}
    farm = TeamFarm(config, root, tokens, users, NodeStore(connection), wait_s)
    try:
        for name in NODES:
            node = config.model_copy(update={
                "node_name": name, "node_cores": 2, "node_memory_mb": 4096,
                "worker_concurrency": 2, "node_labels": {"node": name}})
            farm.procs[name] = start_worker(node, root / f"{name}.log",
                                            **(worker_env or {}).get(name, {}))
        for name in NODES:
            wait_for(lambda n=name: farm.nodes.is_alive(n), bool, 60,  # type: ignore[misc]
                     f"worker {name} to register")
        yield farm
    finally:
        stop_processes([*farm.procs.values(), gateway])
        for client in users.values():
            client.close()
        server.stop()

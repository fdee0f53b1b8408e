"""``simfarm up`` as a test drives it: in a session of its own, its farm's processes found
by the state folder's lock file (which each of them holds open)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.helpers import ROOT, free_port, wait_for


def up_env(state_dir: Path, node: str = "sup-node", **extra: str) -> dict[str, str]:
    """Environment of a ``simfarm up`` on ``state_dir`` (fast heartbeats, short kill
    grace), the caller's ``SIMFARM_*`` dropped; ``extra`` overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update({
        "SIMFARM_STATE_DIR": str(state_dir),
        "SIMFARM_GATEWAY_PORT": str(free_port()),
        "SIMFARM_NODE_NAME": node,
        "SIMFARM_KILL_GRACE_S": "1",
        "SIMFARM_HEARTBEAT_S": "0.5",
        "SIMFARM_HEARTBEAT_TTL_S": "3",
        "PYTHONPATH": str(ROOT),
        **extra,
    })
    return env


def farm_processes(state_dir: Path) -> list[psutil.Process]:
    """The processes that hold the farm's state-folder lock open."""
    from simfarm.client.state_folder import LOCK_FILE, lock_holders

    return lock_holders(state_dir / LOCK_FILE)


class Up:
    """One ``simfarm up --json`` in a session of its own (so a group signal reaches it
    and the parts it starts, as a terminal's Ctrl-C would)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.state_dir = Path(env["SIMFARM_STATE_DIR"])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simfarm.client.cli", "up", "--json"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.url = ""
        self.headers: dict[str, str] = {}

    def wait_up(self) -> Up:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"simfarm up exited: {self.proc.communicate()}")
        self.url = json.loads(line)["url"]
        from simfarm.client.base import token_from_state

        token = token_from_state(self.state_dir, self.url)  # the owner's, as Client() finds it
        self.headers = {"Authorization": f"Bearer {token}"}
        return self

    def submit(self, *argv: str, **spec: Any) -> str:
        response = httpx.post(f"{self.url}/api/v1/jobs", json={"argv": list(argv), **spec},
                              timeout=10, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=10,
                              headers=self.headers).json())

    def wait_state(self, job_id: str, *states: str, timeout_s: float = 30) -> dict[str, Any]:
        return wait_for(lambda: self.job(job_id), lambda j: j["state"] in states, timeout_s,
                        f"job {job_id} to be {'/'.join(states)}")

    def stop(self) -> str:
        """SIGTERM, wait; returns what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        _out, err = self.proc.communicate(timeout=60)
        return err

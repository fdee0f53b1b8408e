"""Small helpers shared by the tests: waiting on conditions, starting real processes."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis

from simfarm.client.embedded import port_is_free, wait_until
from simfarm.common.settings import DEFAULT_JOB_ENV_INHERIT, Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakes"

__all__ = ["FAKES", "ROOT", "free_port", "start_gateway", "start_worker", "wait_for", "wait_until"]


#: Test ports come from below the kernel's ephemeral range (32768-60999 on Linux), a
#: slice per xdist worker: a port chosen here and bound a moment later cannot meanwhile
#: become the source port of some connection or another process's bind(0), nor be chosen
#: by the other worker; a Redis restarted on its port finds it still free.
PORT_SLICE, PORT_BASE, PORT_SLICES = 7000, 10000, 3
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now that no other test of this run is given."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % PORT_SLICES if worker.isdigit() else 0
    low = PORT_BASE + index * PORT_SLICE
    for _ in range(200):
        port = random.randrange(low, low + PORT_SLICE)
        if port not in _handed_out and port_is_free(port, host):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # the slice is full
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(
    fetch: Callable[[], T],
    condition: Callable[[T], bool],
    timeout_s: float = 20.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> T:
    """Poll ``fetch()`` until ``condition(value)`` holds; return that value or fail."""
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not condition(value):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what}; last: {value!r}"
            )
        time.sleep(interval_s)
        value = fetch()
    return value


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a simfarm child process with these settings."""
    env = dict(os.environ)
    env.update(settings.export_env())
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if "job_env_inherit" not in settings.model_fields_set:
        # the fakes' knobs (FAKE_ANSYSEDT_SECONDS...) set on a worker reach its jobs
        env["SIMFARM_JOB_ENV_INHERIT"] = json.dumps([*DEFAULT_JOB_ENV_INHERIT, "FAKE_*"])
    env.update(extra)
    return env


def start_worker(settings: Settings, log_path: Path, prefix: Sequence[str] = (),
                 **extra: str) -> subprocess.Popen[bytes]:
    """Start a real Celery worker process for ``settings.node_name`` (``prefix``: a
    command that runs it elsewhere, e.g. ``ip netns exec NAME``)."""
    log = open(log_path, "ab")
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "simfarm.workers.main"],
        env=child_env(settings, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def start_gateway(settings: Settings, log_path: Path, **extra: str) -> subprocess.Popen[bytes]:
    """Start the real gateway (gunicorn) on ``settings.gateway_port``."""
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "simfarm.gateway.server"],
        env=child_env(settings, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )

    def _up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited; see {log_path}: {log_path.read_text()[-2000:]}")
        url = f"http://127.0.0.1:{settings.gateway_port}/api/v1/health"
        return httpx.get(url, timeout=1).status_code in (200, 503)

    wait_until(_up, 30, "gateway")
    return proc


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    """Terminate a child and wait for it (kill if it does not stop)."""
    stop_processes([proc], timeout_s)


def stop_processes(procs: Iterable[subprocess.Popen[Any] | None], timeout_s: float = 15) -> None:
    """Terminate several children at once, then wait for each (kill what does not stop).

    One after the other, a farm's teardown waited for each worker's warm shutdown in turn.
    """
    running = [p for p in procs if p is not None and p.poll() is None]
    for proc in running:
        proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class FarmApi:
    """What farm tests do through the gateway's REST API (``http``: a client on it)."""

    http: httpx.Client

    def submit(self, **spec: Any) -> str:
        response = self.http.post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/api/v1/jobs/{job_id}").json())

    def wait_state(self, job_id: str, *states: str, timeout_s: float = 30) -> dict[str, Any]:
        return wait_for(lambda: self.job(job_id), lambda j: j["state"] in states, timeout_s,
                        f"job {job_id} to be {'/'.join(states)}")

    def worker(self, name: str) -> dict[str, Any]:
        rows = self.http.get("/api/v1/workers").json()["workers"]
        return next(dict(r) for r in rows if r["name"] == name)


class CountingRedis(redis.Redis):
    """A real Redis client that counts the commands it sends (pipelines included)."""

    commands = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingRedis.commands += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(raise_on_error: bool = True) -> Any:
            CountingRedis.commands += len(pipe.command_stack)
            return original(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe

"""Small helpers shared by the tests: waiting on conditions, starting real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from simfarm.client.embedded import free_port, wait_until
from simfarm.common.settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakes"

__all__ = ["FAKES", "ROOT", "free_port", "start_gateway", "start_worker", "wait_for", "wait_until"]


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
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

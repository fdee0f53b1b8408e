"""What the benchmarks share: a private farm (redis-server, gateway, workers as real
processes, as in production) and small statistics helpers.

Nothing here is imported by simfarm itself.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from simfarm.client.embedded import free_port, wait_until
from simfarm.common.redis_url import connect
from simfarm.common.settings import DEFAULT_JOB_ENV_INHERIT, Settings

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> str:
    """``p50/p99/max`` of seconds, printed in milliseconds."""
    return (f"p50 {percentile(values, 50) * 1000:7.1f} ms  p99 {percentile(values, 99) * 1000:7.1f}"
            f" ms  max {max(values) * 1000:7.1f} ms  (n={len(values)})")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Farm:
    """A private simfarm: its own redis-server, gateway and workers."""

    root: Path
    settings: Settings
    redis_port: int
    redis_proc: subprocess.Popen[bytes]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def redis(self) -> redis.Redis:
        """A client of the farm's Redis (its primary, when the farm runs on Sentinel)."""
        return connect(self.settings.require_redis_url())

    def env(self, settings: Settings) -> dict[str, str]:
        env = dict(os.environ)
        env.update(settings.export_env())
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        if "job_env_inherit" not in settings.model_fields_set:
            # the fakes' knobs (FAKE_ANSYSEDT_SECONDS...) set on a worker reach its jobs, as
            # a peer's jobs inherit its whole environment (tests/helpers.py does the same)
            env["SIMFARM_JOB_ENV_INHERIT"] = json.dumps([*DEFAULT_JOB_ENV_INHERIT, "FAKE_*"])
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def start_gateway(self, **overrides: Any) -> None:
        settings = self.settings.model_copy(update=overrides)
        self._spawn("gateway", [sys.executable, "-m", "simfarm.gateway.server"],
                    self.env(settings))
        wait_until(lambda: httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200,
                   60, "the gateway")

    def start_worker(self, name: str, **overrides: Any) -> None:
        settings = self.settings.model_copy(update={"node_name": name, **overrides})
        self._spawn(f"worker-{name}", [sys.executable, "-m", "simfarm.workers.main"],
                    self.env(settings))
        connection = self.redis()
        key = f"{self.settings.key_prefix}node:{name}:alive"
        wait_until(lambda: connection.exists(key), 60, f"worker {name}")

    def stop(self, name: str, kill: bool = False) -> None:
        proc = self.procs.pop(name)
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def start_redis(data_dir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """A redis-server with AOF (as ``simfarm up`` runs it) on ``port``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
         "--logfile", str(data_dir / "redis.log"), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port)
    wait_until(client.ping, 30, "redis-server")
    client.close()
    return proc


@contextmanager
def farm(**settings: Any) -> Iterator[Farm]:
    """A private farm with a gateway (no workers yet); everything stops on exit."""
    root = Path(tempfile.mkdtemp(prefix="simfarm-bench-"))
    port = free_port()
    redis_proc = start_redis(root / "redis", port)
    values: dict[str, Any] = {"node_name": "bench-gateway", "heartbeat_s": 0.5,
                              "heartbeat_ttl_s": 5.0, "log_level": "WARNING", **settings}
    base = Settings(redis_url=f"redis://127.0.0.1:{port}/0", state_dir=root / "state",
                    gateway_port=free_port(), **values)
    the_farm = Farm(root, base, port, redis_proc)
    try:
        the_farm.start_gateway()
        yield the_farm
    finally:
        for name in list(the_farm.procs):
            the_farm.stop(name)
        the_farm.redis_proc.terminate()
        the_farm.redis_proc.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def timed(fn: Any, *args: Any) -> float:
    """Seconds ``fn(*args)`` took."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start

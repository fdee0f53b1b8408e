"""`simfarm gateway` and `simfarm worker` say where they listen, which node and queue they
serve and what they are connected to; a second worker on the same host without its share
of cores and memory is warned."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simfarm.common.settings import Settings, redact_url
from simfarm.workers.context import node_queue
from tests.helpers import child_env, free_port, start_gateway, stop_process, wait_until


class Service:
    """One ``simfarm <command>`` process whose stderr goes to a file."""

    def __init__(self, command: str, settings: Settings, log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simfarm.client.cli", command], env=child_env(settings),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def said(self, text: str) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        return text in self.log.read_text()

    def line(self, start: str) -> str:
        wait_until(lambda: self.said(start), 60, repr(start))
        return next(line for line in self.log.read_text().splitlines() if start in line)


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in reversed(started):
        stop_process(service.proc)


def test_gateway_and_workers_say_what_they_serve(settings: Settings, tmp_path: Path,
                                                services: list[Service]) -> None:
    own = settings.model_copy(update={"key_prefix": "startup:", "gateway_port": free_port(),
                                      "node_cores": None, "node_memory_mb": None})
    port = own.gateway_port
    gateway = Service("gateway", own, tmp_path / "gateway.log")
    services.append(gateway)
    line = gateway.line("gateway listening on")
    assert f"gateway listening on http://127.0.0.1:{port}" in line
    assert f"Redis {own.redis_url} answers" in line and "auth: no tokens" in line

    first = own.model_copy(update={"node_name": "startup-a", "node_cores": 2,
                                   "node_memory_mb": 2048})
    services.append(Service("worker", first, tmp_path / "a.log"))
    ready = services[-1].line("node startup-a: ready on host")
    assert f"queue {node_queue('startup-a')}," in ready
    assert "2 cores, 2048 MiB memory" in ready
    connected = services[-1].line("node startup-a: Redis")
    assert f"Redis {own.redis_url}" in connected
    assert f"staged files through the gateway at http://127.0.0.1:{port}" in connected
    assert not services[-1].said("shares host")  # told its share

    second = own.model_copy(update={"node_name": "startup-b"})
    services.append(Service("worker", second, tmp_path / "b.log"))
    warning = services[-1].line("node startup-b: shares host")
    assert "WARNING" in warning and "with startup-a" in warning
    assert "SIMFARM_NODE_CORES and SIMFARM_NODE_MEMORY_MB" in warning


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cret@redis.lab:6379/0", "redis://:***@redis.lab:6379/0"),
    ("rediss://simfarm:s3cret@redis.lab/1", "rediss://simfarm:***@redis.lab/1"),
    ("redis://redis.lab:6379/0", "redis://redis.lab:6379/0"),
    ("redis://user@redis.lab/0", "redis://user@redis.lab/0"),
])
def test_passwords_never_appear_in_startup_lines(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_gateway_stops_at_once_with_idle_keep_alive_clients(settings: Settings,
                                                              tmp_path: Path) -> None:
    """A client that keeps its connection open between requests (every HTTP client does)
    does not hold a gateway's stop for gunicorn's graceful timeout."""
    own = settings.model_copy(update={"key_prefix": "keepalive:", "gateway_port": free_port(),
                                      "gateway_header_timeout_s": 600.0,
                                      "gateway_read_timeout_s": 600.0,
                                      "gateway_stop_grace_s": 600.0})
    log = tmp_path / "gateway.log"
    gateway = start_gateway(own, log)
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{own.gateway_port}") for _ in range(3)]
    try:
        for client in clients:
            assert client.get("/api/v1/health").status_code == 200  # left open, idle
        stop_process(gateway, timeout_s=20)  # else killed: the stop would take 600 s
        assert gateway.returncode == 0, log.read_text()[-2000:]
    finally:
        for client in clients:
            client.close()
        stop_process(gateway)

"""The embedded service: a private redis-server, the gateway and one worker on this
machine, started as child processes and stopped together."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from simfarm.client.embedded_auth import (
    LocalToken,
    RedisUsers,
    private_dir,
    write_private,
)
from simfarm.common.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "embedded.json"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP port can be bound on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(check: object, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll ``check()`` until it is truthy or raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as exc:  # the service may not be up yet
            last = exc
        time.sleep(interval_s)
    raise TimeoutError(
        f"{what} did not become ready in {timeout_s:g} s"
        + (f" (last error: {last})" if last else "")
    )


def read_state_file(state_dir: Path) -> dict[str, str] | None:
    """The URL of a running embedded service started from ``state_dir``, if any."""
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class EmbeddedService:
    """Starts and stops a complete single-machine simfarm.

    With ``settings.redis_url`` unset a private ``redis-server`` (AOF on) is started on a
    free loopback port, its data in ``state_dir/redis``.
    """

    def __init__(
        self, settings: Settings, *, gateway_port: int | None = None, node_name: str | None = None
    ) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir
        self.gateway_port = gateway_port or settings.gateway_port
        if not port_is_free(self.gateway_port):
            busy, self.gateway_port = self.gateway_port, free_port()
            log.warning("port %d is busy; the gateway uses port %d", busy, self.gateway_port)
        self.node_name = node_name or settings.node_name
        self.redis_url = settings.redis_url
        self.redis_users: RedisUsers | None = None  # set when the private Redis is ours
        self.local_token = LocalToken()
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def login_url(self) -> str:
        """The dashboard's one-time sign-in URL (the first browser to open it wins)."""
        return f"{self.url}/login?code={self.local_token.login_code}"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start every part and wait until the gateway answers and the worker is alive."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o711)  # others may not list it (job folders need +x)
        private_dir(self.state_dir / "logs")
        try:
            if not self.redis_url:
                self.redis_url = self._start_redis(timeout_s)
            env = self._child_env()
            gateway_env = {**env, **self.local_token.gateway_env(
                list(self.settings.auth_tokens))}
            worker_env = dict(env)
            if self.redis_users is not None:  # each part connects as its own Redis user
                gateway_env["SIMFARM_REDIS_URL"] = self.redis_users.url(self.redis_url,
                                                                        "gateway")
                worker_env["SIMFARM_REDIS_URL"] = self.redis_users.url(self.redis_url,
                                                                       "dispatcher")
            if not self.settings.token:  # staged files: the worker calls the gateway
                worker_env["SIMFARM_TOKEN"] = self.local_token.worker_token
            self._spawn("gateway", [sys.executable, "-m", "simfarm.gateway.server"],
                        gateway_env)
            self._spawn("worker", [sys.executable, "-m", "simfarm.workers.main"], worker_env)
            wait_until(self._ready, timeout_s, "the gateway and worker")
        except BaseException:
            self.stop()
            raise
        write_private(self.state_dir / STATE_FILE, json.dumps(
            {"url": self.url, "redis_url": self.redis_url, "pid": str(os.getpid()),
             "token": self.local_token.token}))
        log.info("embedded service ready at %s", self.url)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.export_env())
        env.update(
            {
                "SIMFARM_REDIS_URL": self.redis_url or "",
                "SIMFARM_GATEWAY_PORT": str(self.gateway_port),
                "SIMFARM_GATEWAY_HOST": "127.0.0.1",
                "SIMFARM_NODE_NAME": self.node_name,
                "SIMFARM_STATE_DIR": str(self.state_dir),
            }
        )
        return env

    def _start_redis(self, timeout_s: float) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found on PATH: install it "
                "(apt-get install redis-server) or set SIMFARM_REDIS_URL"
            )
        port = free_port()
        data = private_dir(self.state_dir / "redis")
        self.redis_users = RedisUsers()
        acl = self.redis_users.write_acl(data, self.settings.key_prefix)
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--aclfile",
            str(acl),
        ]
        self._spawn("redis", argv, dict(os.environ))
        url = self.redis_users.url(f"redis://127.0.0.1:{port}/0", "default")
        import redis

        client = redis.Redis.from_url(url)
        wait_until(client.ping, timeout_s, "redis-server")
        client.close()
        return url

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        logfile = open(self.state_dir / "logs" / f"{name}.log", "ab")
        self._logs.append(logfile)
        proc = subprocess.Popen(
            argv, env=env, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._procs.append((name, proc))
        log.info("started %s (pid %d)", name, proc.pid)

    def _ready(self) -> bool:
        for name, proc in self._procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode}; see "
                    f"{self.state_dir / 'logs' / (name + '.log')}"
                )
        response = httpx.get(f"{self.url}/api/v1/health", timeout=2)
        return response.status_code == 200 and response.json().get("nodes_alive", 0) >= 1

    def check_alive(self) -> str | None:
        """Name of a part that exited, or None while all run."""
        for name, proc in self._procs:
            if proc.poll() is not None:
                return name
        return None

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the worker (running jobs go back to the queue), the gateway, then Redis."""
        for name, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in %g s; killing it", name, timeout_s)
                    proc.kill()
                    proc.wait(timeout=5)
        self._procs.clear()
        for logfile in self._logs:
            logfile.close()
        self._logs.clear()
        try:
            (self.state_dir / STATE_FILE).unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> EmbeddedService:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

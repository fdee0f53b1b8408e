"""The embedded service: a private redis-server, the gateway and one worker on this
machine, started as child processes and stopped together, in order.

Supervision: the state folder is locked first (one farm per folder, see
:mod:`simfarm.client.state_folder`); a guardian process is started before any part
(see :mod:`simfarm.client.guardian`), so the parts stop in order however the starting
process ends, SIGKILL included; every part runs in a session (process group) of its own,
so a Ctrl-C or hang-up of the terminal reaches only the starting process, which stops
them in order: the worker first (it hands its running jobs back to the queue), then the
gateway, Redis last.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Any

import httpx
import psutil

from simfarm.client import guardian
from simfarm.client.embedded_auth import (
    LocalToken,
    RedisUsers,
    private_dir,
    write_private,
)
from simfarm.client.state_folder import (
    STATE_FILE,
    StateFolderBusy,
    StateLock,
    read_state_file,
)
from simfarm.common.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "STATE_FILE",
    "EmbeddedService",
    "PartExited",
    "StartAborted",
    "StartCancelled",
    "StateFolderBusy",
    "free_port",
    "port_is_free",
    "read_state_file",
    "wait_until",
]

IS_WINDOWS = sys.platform == "win32"
STOP_TIMEOUT_S = 20.0


class StartAborted(RuntimeError):
    """Starting cannot succeed; :func:`wait_until` gives up at once on it."""


class StartCancelled(StartAborted):
    """The start was cancelled (a signal arrived); what had started was stopped."""


class PartExited(StartAborted):
    """A part of the farm exited while it was starting (the message names its log)."""


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
        except StartAborted:
            raise
        except Exception as exc:  # the service may not be up yet
            last = exc
        time.sleep(interval_s)
    raise TimeoutError(
        f"{what} did not become ready in {timeout_s:g} s"
        + (f" (last error: {last})" if last else "")
    )


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
        self._lock = StateLock(self.state_dir)
        self._guardian: subprocess.Popen[bytes] | None = None
        self._guardian_pipe: IO[str] | None = None
        self._cancel: threading.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def login_url(self) -> str:
        """The dashboard's one-time sign-in URL (the first browser to open it wins)."""
        return f"{self.url}/login?code={self.local_token.login_code}"

    def start(self, timeout_s: float = 60.0, cancel: threading.Event | None = None) -> None:
        """Lock the state folder, start every part and wait until the gateway answers and
        the worker is alive.

        ``cancel`` set meanwhile (a signal arrived) stops what was started and raises
        :class:`StartCancelled`. A state folder held by another farm raises
        :class:`StateFolderBusy` (its ``url`` set when that farm answers).
        """
        self._cancel = cancel
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o711)  # others may not list it (job folders need +x)
        private_dir(self.state_dir / "logs")
        try:
            self._lock.take(timeout_s, self._check_cancel)
            self._start_guardian()
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
        write_private(self.state_dir / STATE_FILE, json.dumps(  # the owner's token: 0600
            {"url": self.url, "redis_url": self.redis_url, "pid": str(os.getpid()),
             "token": self.local_token.token}))
        log.info("embedded service ready at %s", self.url)

    def _check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise StartCancelled("stopped while starting")

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

        def _answers() -> bool:
            self._check_cancel()
            proc = self._procs[-1][1]
            if proc.poll() is not None:
                raise PartExited(f"redis-server exited with code {proc.returncode}; see "
                                   f"{self.state_dir / 'logs' / 'redis.log'}")
            return bool(client.ping())

        wait_until(_answers, timeout_s, "redis-server")
        client.close()
        return url

    def _start_guardian(self) -> None:
        """Start the guardian, which stops the parts if this process ends first."""
        read_end, write_end = os.pipe()
        logfile = open(self.state_dir / "logs" / "guardian.log", "ab")
        self._logs.append(logfile)
        try:
            self._guardian = subprocess.Popen(
                [sys.executable, "-m", "simfarm.client.guardian", str(os.getpid()),
                 str(STOP_TIMEOUT_S), str(self._lock.path)],
                stdin=read_end, stdout=logfile, stderr=subprocess.STDOUT,
                **self._part_kwargs(),
            )
        finally:
            os.close(read_end)
        self._guardian_pipe = os.fdopen(write_end, "w", buffering=1)
        log.info("started guardian (pid %d)", self._guardian.pid)

    def _part_kwargs(self) -> dict[str, Any]:
        """Popen arguments of every part: a session (group) of its own, so signals sent
        to this process's group (Ctrl-C, hang-up) do not reach it, and the state
        folder's lock inherited (held until the last part exits)."""
        if IS_WINDOWS:
            return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
        assert self._lock.fd is not None
        return {"start_new_session": True, "pass_fds": (self._lock.fd,)}

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self._check_cancel()
        logfile = open(self.state_dir / "logs" / f"{name}.log", "ab")
        self._logs.append(logfile)
        proc = subprocess.Popen(
            argv, env=env, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            **self._part_kwargs(),
        )
        self._procs.append((name, proc))
        self._register(name, proc)
        log.info("started %s (pid %d)", name, proc.pid)

    def _register(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Tell the guardian about a part (one it can stop)."""
        if self._guardian_pipe is None:
            return
        try:
            line = guardian.describe(name, psutil.Process(proc.pid))
            self._guardian_pipe.write(line + "\n")
        except (psutil.Error, OSError) as exc:  # exited already: _ready reports it
            log.warning("could not register %s (pid %d) with the guardian: %s",
                        name, proc.pid, exc)

    def _ready(self) -> bool:
        self._check_cancel()
        for name, proc in self._procs:
            if proc.poll() is not None:
                raise PartExited(
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
        if self._guardian is not None and self._guardian.poll() is not None:
            return "guardian"
        return None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the worker (running jobs go back to the queue), the gateway, then Redis;
        then the guardian, and unlock the state folder."""
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
        self._stop_guardian()
        for logfile in self._logs:
            logfile.close()
        self._logs.clear()
        if self._lock.fd is not None:
            state = read_state_file(self.state_dir)
            if state is not None and state.get("pid") == str(os.getpid()):
                (self.state_dir / STATE_FILE).unlink(missing_ok=True)
            self._lock.release()

    def _stop_guardian(self) -> None:
        pipe, self._guardian_pipe = self._guardian_pipe, None
        if pipe is not None:
            try:
                pipe.write(guardian.RELEASE + "\n")
                pipe.close()
            except OSError:
                pass  # it is gone already
        proc, self._guardian = self._guardian, None
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedService:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

"""A Redis primary, a replica and three sentinels on loopback (all real ``redis-server``
processes; a sentinel is ``redis-server sentinel.conf --sentinel``), for failover tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from tests.conftest import RedisServer
from tests.helpers import free_port, stop_process, wait_until

SERVICE = "simfarm-primary"


class Sentinel:
    """One ``redis-server --sentinel`` watching :data:`SERVICE`.

    ``info_period_ms``: how often it sends INFO to the servers it watches (Sentinel's
    default is 10 s; ``SENTINEL DEBUG info-period``). A primary that comes back after a
    failover reports itself a primary; a sentinel makes it the new one's replica only
    when that report is 8 s old (4 x the 2 s publish period) and the server has not been
    marked down for 8 s, and it looks only when an INFO answer arrives. With the 10 s
    default the rejoin takes 10-20 s, and every time a loaded machine delays a PING
    answer past ``down_after_ms`` the server is marked down again and the 8 s start
    over, checked 10 s apart: that is how a busy CI run waited past 30 s. Tests ask
    every second; the soak keeps the default, as deployed."""

    def __init__(self, folder: Path, primary_port: int, down_after_ms: int,
                 info_period_ms: int | None = 1000) -> None:
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        # Sentinel rewrites its configuration file (it must be writable and its own).
        (folder / "sentinel.conf").write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"logfile {folder / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n")
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.proc = subprocess.Popen([binary, str(folder / "sentinel.conf"), "--sentinel"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        self.client = redis.Redis(port=self.port, decode_responses=True)
        wait_until(self.client.ping, 20, f"sentinel on port {self.port}")
        if info_period_ms is not None:
            self.client.execute_command("SENTINEL", "DEBUG", "info-period",
                                        str(info_period_ms))

    def primary(self) -> tuple[str, int] | None:
        """Where this sentinel says the primary is."""
        address = self.client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
        return (address[0], int(address[1])) if address else None

    def stop(self) -> None:
        self.client.close()
        stop_process(self.proc)


class ReplicatedRedis:
    """A primary, one replica of it and three sentinels (quorum 2); ``info_period_ms``
    as for :class:`Sentinel` (None: Sentinel's default, 10 s)."""

    def __init__(self, folder: Path, down_after_ms: int = 2000,
                 info_period_ms: int | None = 1000) -> None:
        self.folder = folder
        common = ("--appendfsync", "always", "--repl-diskless-sync-delay", "0")
        self.servers = [RedisServer(folder / "a", extra_args=common)]
        self.servers[0].start()
        primary_port = self.servers[0].port
        self.servers.append(RedisServer(folder / "b", extra_args=(
            *common, "--replicaof", "127.0.0.1", str(primary_port))))
        self.servers[1].start()
        wait_until(lambda: self.replicas_of(self.servers[0]) == 1, 20, "the replica to sync")
        self.sentinels = [Sentinel(folder / f"sentinel-{i}", primary_port, down_after_ms,
                                   info_period_ms) for i in range(3)]
        wait_until(lambda: all(s.client.execute_command(
            "SENTINEL", "replicas", SERVICE) for s in self.sentinels), 30,
            "the sentinels to find the replica")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @staticmethod
    def replicas_of(server: RedisServer) -> int:
        """Replicas of ``server`` that finished their initial sync (``state=online``)."""
        client = redis.Redis(port=server.port)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return sum(1 for key, value in info.items()
                   if key.startswith("slave") and isinstance(value, dict)
                   and value.get("state") == "online")

    def primary(self) -> RedisServer:
        """The server the sentinels agree is the primary now."""
        address = self.sentinels[0].primary()
        assert address is not None
        return next(s for s in self.servers if s.port == address[1])

    def kill_primary(self) -> RedisServer:
        """SIGKILL the primary; returns it (stopped)."""
        old = self.primary()
        old.stop(kill=True)
        return old

    def wait_failover(self, old: RedisServer, timeout_s: float = 30) -> RedisServer:
        """Wait until every sentinel names another server as the primary."""
        wait_until(lambda: all(s.primary() not in (None, ("127.0.0.1", old.port))
                               for s in self.sentinels), timeout_s, "the failover")
        return self.primary()

    def restart(self, server: RedisServer) -> None:
        """Start a stopped server again on its port and data (the sentinels turn a former
        primary into a replica of the new one)."""
        server.start()

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()

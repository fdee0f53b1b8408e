"""HAProxy in front of gateways, running deploy/haproxy/haproxy.cfg (Debian's haproxy),
for the several-gateways test and benchmark."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from tests.helpers import ROOT, free_port, stop_process, wait_until

HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
SERVERS = ("gw-a", "gw-b")  # the config's gateways


def haproxy_binary() -> str:
    """Debian's haproxy."""
    binary = shutil.which("haproxy")
    if binary is None:
        raise RuntimeError("haproxy is not installed; `make test` installs it "
                           "(scripts/install-system-deps.sh --test)")
    return binary


class Balancer:
    """HAProxy running deploy/haproxy/haproxy.cfg, with the gateways' and its own
    addresses put on loopback ports and a stats socket to read the servers' states."""

    def __init__(self, folder: Path, gateway_ports: dict[str, int]) -> None:
        """``gateway_ports``: the config's servers (gw-a, gw-b) to use, by name; the
        others are left out."""
        self.port = free_port()
        self.socket = folder / "haproxy.sock"
        text = HAPROXY_CFG.read_text()
        text = text.replace("bind :8765", f"bind 127.0.0.1:{self.port}")
        # (fewer connections: 20,000 need more open files than a test process may have)
        text = text.replace("    maxconn 20000\n",
                            f"    maxconn 2000\n    stats socket {self.socket} level admin\n")
        for name in SERVERS:
            line = f"    server {name} {name}:8765 check\n"
            assert line in text, f"{HAPROXY_CFG} has no server {name}"
            port = gateway_ports.get(name)
            text = text.replace(line, f"    server {name} 127.0.0.1:{port} check\n"
                                if port else "")
        self.config = folder / "haproxy.cfg"
        self.config.write_text(text)
        check = subprocess.run([haproxy_binary(), "-c", "-f", str(self.config)],
                               capture_output=True, text=True, timeout=30, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(folder / "haproxy.log", "ab")
        self.proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(self.socket.exists, 20, "haproxy's stats socket")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def states(self) -> dict[str, str]:
        """Each gateway's status as HAProxy sees it (UP, DOWN, ...)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = [line.split(",") for line in data.decode().splitlines() if line]
        status = [column.lstrip("# ") for column in rows[0]].index("status")
        return {row[1]: row[status] for row in rows[1:]
                if len(row) > status and row[0] == "gateways" and row[1] != "BACKEND"}

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()

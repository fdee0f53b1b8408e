"""Test hosts on their own network addresses: Linux network namespaces joined to this
machine by veth pairs (``ip netns``, ``ip link``; needs root, as CI runs).

Each :class:`TestHost` is a namespace with one link to the host: ``host_ip`` on the
machine's side, ``ip`` inside. Processes started with :attr:`prefix` see only that link
and their own loopback, so they reach the machine's services at ``host_ip`` only.
:meth:`cut` takes the link down: a real partition — packets vanish, nobody is told, open
connections hang until their timeouts — and :meth:`heal` brings it back.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def require_netns() -> None:
    """Fail (not skip) with what is missing: these tests are part of CI."""
    if os.geteuid() != 0:
        pytest.fail("network-namespace tests need root (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.fail("the `ip` command is missing: apt-get install iproute2")


class TestHost:
    """A network namespace with one veth link to this machine."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, index: int) -> None:
        tag = f"{os.getpid() % 100000}{index}"
        self.name = f"simfarm{tag}"
        self._outside = f"sfh{tag}"
        inside = f"sfn{tag}"
        net = f"10.{200 + os.getpid() % 50}.{index}"
        self.host_ip, self.ip = f"{net}.1", f"{net}.2"
        self.prefix = ["ip", "netns", "exec", self.name]
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self._outside)
            _ip("link", "set", self._outside, "up")
            _ip("-n", self.name, "addr", "add", f"{self.ip}/30", "dev", inside)
            _ip("-n", self.name, "link", "set", inside, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    def cut(self) -> None:
        """Partition the host from the machine (its processes are not told)."""
        _ip("link", "set", self._outside, "down")

    def heal(self) -> None:
        """Reconnect it."""
        _ip("link", "set", self._outside, "up")

    def delete(self) -> None:
        """Remove the namespace (and with it the veth pair)."""
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, timeout=10)

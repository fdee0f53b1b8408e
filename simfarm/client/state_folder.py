"""An embedded farm's state folder: one farm (one redis-server on the AOF in
``state_dir/redis``) per folder, and what tells others about it.

``embedded.json`` names the running farm (its URL, Redis URL and the pid of the process
that started it); clients read it to find the farm. ``embedded.lock`` is the lock: an
exclusive ``flock`` taken by the process that starts the farm and inherited by every part
it starts (guardian, redis-server, gateway, worker). A lock held by an open file
description lasts until the last process holding it exits, so the folder stays locked
while anything of a farm still runs - even after the process that started it was killed
- and the lock file's holders are exactly the farm's processes (``/proc/<pid>/fd``). The
lock file is never deleted: a new file would be a new lock.

On Windows (no ``flock``; descriptors are not passed to children here) the starting
process holds an ``msvcrt`` lock alone and the guardian stops the parts it leaves.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

log = logging.getLogger(__name__)

STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
IS_WINDOWS = sys.platform == "win32"


class StateFolderBusy(RuntimeError):
    """Another farm (running, starting or stopping) holds the state folder.

    ``url`` is set when that farm is up and answering: callers may use it instead.
    """

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


def read_state_file(state_dir: Path) -> dict[str, str] | None:
    """What ``embedded.json`` says about the farm started from ``state_dir``, if any."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_service(state_dir: Path) -> str | None:
    """The URL of a farm started from ``state_dir`` whose starting process runs and whose
    gateway answers now (parts a dead farm left are not a running farm)."""
    state = read_state_file(state_dir) or {}
    url = state.get("url")
    if not url or not _alive(state.get("pid")):
        return None
    try:
        ok = httpx.get(f"{url}/api/v1/health", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return None
    return str(url) if ok else None


def _alive(pid: object) -> bool:
    try:
        return psutil.Process(int(str(pid))).status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False


class StateLock:
    """The exclusive lock of one state folder, held from :meth:`try_acquire` until
    :meth:`release` (and by the children that inherit :attr:`fd`)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock now if it is free; record this process as its owner."""
        if self.fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            return False
        me = psutil.Process()
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": me.pid, "created": me.create_time(),
                                 "argv": me.cmdline()[:6]}).encode())
        self.fd = fd
        return True

    def release(self) -> None:
        """Let go of this process's hold (children that inherited it keep theirs)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def owner(self) -> dict[str, Any]:
        """What the last owner wrote: ``pid``, ``created``, ``argv`` (may be empty)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def owner_alive(self) -> bool:
        """Whether the process that took the lock last still runs."""
        info = self.owner()
        try:
            proc = psutil.Process(int(info["pid"]))
            return abs(proc.create_time() - float(info["created"])) < 0.01 and (
                proc.status() != psutil.STATUS_ZOMBIE)
        except (KeyError, TypeError, ValueError, psutil.Error):
            return False

    def take(self, wait_s: float, check: Callable[[], None] = lambda: None) -> None:
        """Take the lock, or raise :class:`StateFolderBusy` saying what holds it.

        A farm that answers is reported at once (with its URL). A farm that is starting,
        or whose starter died while its guardian stops it, is waited for up to
        ``wait_s``. Parts left by a farm whose starter and guardian are both gone are
        stopped (worker, gateway, Redis in that order), then the lock is taken.
        ``check()`` is called while waiting (it may raise to give up).
        """
        if self.try_acquire():
            return
        url = running_service(self.path.parent)
        if url is not None:
            raise self._running(url)
        stopping = any(_role(p) == "guardian" for p in lock_holders(self.path))
        if self.owner_alive() or stopping:
            log.info("state folder %s is locked (a farm is %s); waiting up to %g s",
                     self.path.parent, "starting" if self.owner_alive() else "stopping", wait_s)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if self.try_acquire():
                    return
                check()
                url = running_service(self.path.parent)
                if url is not None:
                    raise self._running(url)
                time.sleep(0.2)
        if not self.owner_alive():
            leftovers = lock_holders(self.path)
            if leftovers:
                log.warning("state folder %s: the process that started its farm (pid %s) "
                            "is gone; stopping what it left: %s", self.path.parent,
                            self.owner().get("pid", "?"),
                            "; ".join(describe_process(p) for p in leftovers))
                stop_leftovers(leftovers)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if self.try_acquire():
                    return
                time.sleep(0.1)
        raise StateFolderBusy(self._busy("it did not become free"))

    def _running(self, url: str) -> StateFolderBusy:
        pid = (read_state_file(self.path.parent) or {}).get("pid", "?")
        return StateFolderBusy(
            f"the state folder {self.path.parent} is in use by another simfarm: it runs at "
            f"{url} (pid {pid}); use that one, stop it (Ctrl-C in its terminal, or "
            f"`kill {pid}`), or set SIMFARM_STATE_DIR to another folder", url=url)

    def _busy(self, what: str) -> str:
        owner = self.owner()
        holders = lock_holders(self.path)
        held = "; ".join(describe_process(p) for p in holders) or "no process of this user"
        return (f"the state folder {self.path.parent} is in use by another simfarm ({what}): "
                f"{self.path} was locked by pid {owner.get('pid', '?')} "
                f"({' '.join(owner.get('argv', []))[:120]}) and is held by {held}; stop it "
                "(Ctrl-C in its terminal), or set SIMFARM_STATE_DIR to another folder")


def _lock(fd: int) -> None:
    if IS_WINDOWS:
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def lock_holders(path: Path) -> list[psutil.Process]:
    """Processes other than this one that hold ``path`` open: the parts of the farm that
    locked it (Linux and macOS; empty on Windows). Processes of other users cannot be
    read and are not listed."""
    if IS_WINDOWS:
        return []
    target = os.path.realpath(path)
    me = os.getpid()
    holders = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if any(f.path == target for f in proc.open_files()):
                holders.append(proc)
        except psutil.Error:
            continue
    return holders


def describe_process(proc: psutil.Process) -> str:
    """``pid 123 (redis-server --port 4321 ...)`` for messages."""
    try:
        cmdline = " ".join(proc.cmdline()[:6]) or proc.name()
    except psutil.Error:
        cmdline = "?"
    return f"pid {proc.pid} ({cmdline[:120]})"


_ROLE_ORDER = ("guardian", "worker", "gateway", "redis", "other")


def _role(proc: psutil.Process) -> str:
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    for marker, role in (("simfarm.client.guardian", "guardian"),
                         ("simfarm.workers.main", "worker"), ("simfarm/workers/main.py", "worker"),
                         ("simfarm.gateway.server", "gateway"), ("redis-server", "redis")):
        if marker in cmdline:
            return role
    return "other"


def stop_leftovers(procs: list[psutil.Process], timeout_s: float = 20.0) -> None:
    """Stop a dead farm's processes in the order a farm stops: its guardian (so it does
    not race us), worker (hands its jobs back), gateway, Redis. Children of listed
    processes (gunicorn's workers) are left to their parent."""
    from simfarm.client.guardian import Part, stop_part

    pids = {p.pid for p in procs}
    tops = []
    for proc in procs:
        try:
            if proc.ppid() not in pids:
                tops.append(proc)
        except psutil.Error:
            continue
    tops.sort(key=lambda p: _ROLE_ORDER.index(_role(p)))
    for proc in tops:
        try:
            part = Part(_role(proc), proc.pid, proc.create_time())
        except psutil.Error:
            continue
        stop_part(part, timeout_s)

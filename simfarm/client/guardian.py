"""The guardian of an embedded farm: stops its parts in order when their parent is gone.

``simfarm up`` (and every other :class:`~simfarm.client.embedded.EmbeddedService`) starts
this small process first, with the read end of a pipe as its stdin; the parent keeps the
write end. The parent writes one JSON line per part it starts (``name``, ``pid``,
``created``) and ``release`` once it has stopped them itself. When the pipe reaches its
end without ``release`` - the parent exited, however: SIGKILL, a crash, the OOM killer -
or the parent's pid is gone, the guardian stops the parts in the reverse order of their
start (the worker hands its running jobs back, then the gateway, then Redis, which
flushes its AOF) and exits.

A pipe rather than ``PR_SET_PDEATHSIG``: the death signal fires when the parent *thread*
that started a child ends (a PyEDB script may call ``start_service()`` from a short-lived
thread), it kills every part at the same moment (the worker could not hand its jobs back
to a Redis that is already stopping), and it does not exist on Windows; a pipe's end is
seen on every platform. The guardian runs in a session of its own and ignores SIGINT and
SIGHUP, so a Ctrl-C or hang-up of the terminal reaches only the parent, which stops the
parts in the same order.

Parts the parent started but had no time to register (it died in between) are found
by the state folder's lock file, which every part holds open (see
:mod:`simfarm.client.state_folder`): they are stopped first.

Run as ``python -m simfarm.client.guardian <parent pid> <stop timeout s> <lock file>``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from simfarm.client.state_folder import lock_holders

log = logging.getLogger("simfarm.guardian")

RELEASE = "release"
PARENT_POLL_S = 0.5


@dataclass
class Part:
    """One process of the farm, identified by pid and start time (pids are reused)."""

    name: str
    pid: int
    created: float

    def process(self) -> psutil.Process | None:
        """The live process, or None when it exited (or its pid now names another)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.created) > 0.01:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def describe(name: str, proc: psutil.Process) -> str:
    """One JSON line registering ``proc`` as the part ``name``."""
    return json.dumps({"name": name, "pid": proc.pid, "created": proc.create_time()})


def _ended(proc: psutil.Process, timeout_s: float) -> bool:
    """Wait until ``proc`` exited; a zombie counts (its reaper may be slow: it is not
    this process's child)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_part(part: Part, timeout_s: float) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL the part (children are its own
    business: the worker stops its jobs, gunicorn its workers)."""
    proc = part.process()
    if proc is None:
        return
    log.info("stopping %s (pid %d)", part.name, part.pid)
    try:
        proc.terminate()
        if _ended(proc, timeout_s):
            return
        log.warning("%s (pid %d) did not stop in %g s; killing it", part.name, part.pid,
                    timeout_s)
        proc.kill()
        _ended(proc, 5)
    except psutil.Error:
        pass


def stop_all(parts: list[Part], timeout_s: float) -> None:
    """Stop ``parts`` one at a time, the last started first."""
    for part in reversed(parts):
        stop_part(part, timeout_s)


def _unregistered(parts: list[Part], holders: list[psutil.Process]) -> list[Part]:
    """Holders of the lock that are not registered parts nor children of one (gunicorn's
    workers belong to their master)."""
    known = {(p.pid, p.created) for p in parts}
    pids = {p.pid for p in parts} | {h.pid for h in holders}
    late = []
    for proc in holders:
        try:
            if (proc.pid, proc.create_time()) in known or proc.ppid() in pids:
                continue
            late.append(Part(f"unregistered {' '.join(proc.cmdline()[:3])}", proc.pid,
                             proc.create_time()))
        except psutil.Error:
            continue
    return late


def _watch_parent(parent_pid: int, gone: threading.Event) -> None:
    try:
        parent = psutil.Process(parent_pid)
    except psutil.Error:
        gone.set()
        return
    while not gone.is_set():
        try:
            if not parent.is_running() or parent.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.Error:
            break
        time.sleep(PARENT_POLL_S)
    gone.set()


def guard(parent_pid: int, timeout_s: float, lock_path: Path | None = None) -> int:
    """Read registrations until ``release`` (exit 0, nothing done) or the parent's end
    (stop every part, exit 0)."""
    parts: list[Part] = []
    lock = threading.Lock()
    released = threading.Event()
    parent_gone = threading.Event()

    def read() -> None:
        for line in sys.stdin:
            text = line.strip()
            if text == RELEASE:
                released.set()
                break
            try:
                data = json.loads(text)
                part = Part(str(data["name"]), int(data["pid"]), float(data["created"]))
            except (ValueError, KeyError, TypeError):
                log.warning("ignored a registration line: %r", text[:200])
                continue
            with lock:
                parts.append(part)
        parent_gone.set()  # end of the pipe: the parent closed it or exited

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    threading.Thread(target=_watch_parent, args=(parent_pid, parent_gone), daemon=True).start()
    parent_gone.wait()
    reader.join(timeout=1.0)  # registrations still in the pipe
    if released.is_set():
        return 0
    with lock:
        todo = list(parts)
    if lock_path is not None:
        todo += _unregistered(todo, lock_holders(lock_path))
    log.warning("parent pid %d is gone; stopping %d part(s) of its farm", parent_pid,
                len(todo))
    stop_all(todo, timeout_s)
    log.info("every part stopped")
    return 0


def main() -> None:
    """Entry point (see the module docstring)."""
    for name in ("SIGINT", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s guardian %(levelname)s %(message)s")
    lock_path = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    sys.exit(guard(int(sys.argv[1]), float(sys.argv[2]), lock_path))


if __name__ == "__main__":
    main()

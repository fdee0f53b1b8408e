"""Orphan guard: when a worker process dies without cleaning up (kill -9, power loss of the
Python process, OOM killer), the solvers it started must die too, or a re-queued job
would run twice at once — once as the orphan, once on the node that took it over.

The worker records the process group of every job it starts as a file in a folder of its
own; a small guard process, started with the worker, polls the worker's pid and, when the
worker is gone, kills every recorded group (SIGTERM, then SIGKILL) long before the
worker's heartbeat expires and the dispatcher hands the job to another node.

Run as ``python -m simfarm.workers.orphan_guard <worker pid> <folder>``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from simfarm.workers.process_tree import IS_WINDOWS, popen_group_kwargs

log = logging.getLogger(__name__)

POLL_S = 0.2


class OrphanGuard:
    """The guard process of this worker process and the folder of job processes it covers.

    The folder holds one empty file per job process, named by its pid (the leader of its
    own group/session); the guard exits when the folder disappears.
    """

    def __init__(self, folder: Path, process: subprocess.Popen[bytes]) -> None:
        self.folder = folder
        self.process = process

    @classmethod
    def start(cls, folder: Path) -> OrphanGuard:
        """Start the guard for this process; jobs recorded with :meth:`track` are covered."""
        folder.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "simfarm.workers.orphan_guard", str(os.getpid()),
             str(folder)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            **popen_group_kwargs(),  # its own group: killing the worker's group spares it
        )
        return cls(folder, process)

    def track(self, pid: int) -> None:
        """Record a job's process (the leader of its own group/session)."""
        (self.folder / str(pid)).touch()

    def untrack(self, pid: int) -> None:
        """The job's process ended and was reaped by the worker."""
        (self.folder / str(pid)).unlink(missing_ok=True)

    def stop(self) -> None:
        """Clean shutdown: the guard exits when its folder disappears."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _kill_groups(pids: list[int]) -> None:
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        if not IS_WINDOWS:
            import signal

            try:
                os.killpg(pid, signal.SIGTERM)  # the session/group the job started
            except (ProcessLookupError, PermissionError):
                pass
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=2)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def guard(worker_pid: int, folder: Path) -> None:
    """Wait for the worker to die (then kill its jobs) or for the folder to go away."""
    try:
        worker = psutil.Process(worker_pid)
    except psutil.NoSuchProcess:
        worker = None
    while folder.is_dir():
        if worker is None or not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE:
            pids = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
            _kill_groups(pids)
            shutil.rmtree(folder, ignore_errors=True)
            return
        time.sleep(POLL_S)


if __name__ == "__main__":
    guard(int(sys.argv[1]), Path(sys.argv[2]))

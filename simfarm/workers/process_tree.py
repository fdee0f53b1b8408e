"""Process-group handling, the only place with POSIX/Windows differences.

Jobs start in their own session (POSIX) or process group (Windows) so that a cancel or
a timeout reaches the solver's grandchildren too (celery#1106), not just the direct child.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import Any

import psutil

log = logging.getLogger(__name__)

IS_WINDOWS = sys.platform == "win32"


def popen_group_kwargs() -> dict[str, Any]:
    """Extra ``subprocess.Popen`` arguments that start a child in a group of its own."""
    if IS_WINDOWS:
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    try:
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    return [root, *children]


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def kill_tree(root: subprocess.Popen[bytes], grace_s: float, job_id: str = "-") -> bool:
    """Stop a child process, its process group and all its descendants.

    Sends SIGTERM (CTRL_BREAK on Windows), waits ``grace_s``, then SIGKILL, and verifies
    with psutil that nothing is left. The root is left for ``root.wait()`` to reap, so its
    exit status stays available. Returns True when every process is gone.
    """
    pid = root.pid
    procs = {p.pid: p for p in _tree(pid)}
    if not IS_WINDOWS:
        for p in _group_members(pid):
            procs.setdefault(p.pid, p)
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs.values():
        try:
            if IS_WINDOWS and proc.pid == pid:
                proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:
                proc.terminate()
        except psutil.Error:
            pass
    alive = _wait(root, list(procs.values()), grace_s)
    if alive:
        log.warning("job %s: %d process(es) ignored SIGTERM; killing", job_id, len(alive))
        if not IS_WINDOWS:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        alive = _wait(root, alive, 5.0)
    if alive:
        log.error("job %s: processes still alive after SIGKILL: %s", job_id, [p.pid for p in alive])
    return not alive


def _wait(
    root: subprocess.Popen[bytes], procs: list[psutil.Process], timeout: float
) -> list[psutil.Process]:
    """Wait for ``procs`` to end; the root through Popen so its exit code is kept."""
    others = [p for p in procs if p.pid != root.pid]
    root_alive: list[psutil.Process] = []
    try:
        root.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        root_alive = [p for p in procs if p.pid == root.pid]
    _gone, alive = psutil.wait_procs(others, timeout=0.5 if root_alive else timeout)
    return root_alive + alive

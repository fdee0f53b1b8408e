#!/usr/bin/env python3
"""FAKE batch-queue engine shared by the fake LSF and fake HPC Pack command-line tools.

Not a scheduler: a small state file (JSON, flock-protected) plus one detached runner
process per job, so jobs really run, move through states over time, can be killed,
hit their run limit and are forgotten after a clean period -- enough for simfarm's
backends to be exercised end to end. The tools in ./lsf and ./winhpc print the
native formats; this module only keeps neutral states:
``pending → running → done | exit | killed | timeout``.

Environment (read by the tools at submission and stored with the job):
  SIMFARM_FAKE_CLUSTER_DIR  state directory (required)
  SIMFARM_FAKE_PEND_S       seconds a job stays pending (default 1)
  SIMFARM_FAKE_MINUTE_S     length of one "minute" of run limit (default 60)
  SIMFARM_FAKE_CLEAN_S      seconds a finished job stays listed (default 3600)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FINAL = ("done", "exit", "killed", "timeout")


def state_dir() -> Path:
    value = os.environ.get("SIMFARM_FAKE_CLUSTER_DIR")
    if not value:
        sys.stderr.write("fake cluster: SIMFARM_FAKE_CLUSTER_DIR is not set\n")
        sys.exit(2)
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def setting(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[dict[str, Any]]:
    """The state, locked for the duration of the block and saved after it."""
    with open(directory / "state.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "state.json"
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            state = {}
        state.setdefault("next_id", 101)
        state.setdefault("jobs", {})
        _purge(state)
        yield state
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)


def _purge(state: dict[str, Any]) -> None:
    now = time.time()
    for job_id in list(state["jobs"]):
        job = state["jobs"][job_id]
        if job["state"] in FINAL and now - job["end_time"] > job["clean_s"]:
            del state["jobs"][job_id]


def allocate_id(state: dict[str, Any]) -> str:
    """A fresh job id (call inside ``locked``)."""
    job_id = str(state["next_id"])
    state["next_id"] += 1
    return job_id


def submit(directory: Path, job: dict[str, Any],
           prepare: Callable[[dict[str, Any]], None] | None = None,
           job_id: str | None = None) -> str:
    """Record a pending job and start its runner; returns the job id.

    ``prepare(job)`` may fill in fields that need the id (output paths, env);
    ``job_id`` reuses an id handed out earlier by :func:`allocate_id`.
    """
    with locked(directory) as state:
        if job_id is None:
            job_id = allocate_id(state)
        job.update(id=job_id, state="pending", submit_time=time.time(), start_time=None,
                   end_time=None, exit_code=None, pid=None, kill=False, reason="",
                   pend_s=setting("SIMFARM_FAKE_PEND_S", 1.0),
                   clean_s=setting("SIMFARM_FAKE_CLEAN_S", 3600.0))
        if prepare is not None:
            prepare(job)
        state["jobs"][job_id] = job
    log = open(directory / "runner.log", "ab")
    subprocess.Popen([sys.executable, __file__, "run", str(directory), job_id],
                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     start_new_session=True, close_fds=True)
    return job_id


def request_kill(directory: Path, job_id: str, reason: str) -> str | None:
    """Ask the runner to kill a job; returns its state before, or None if unknown."""
    with locked(directory) as state:
        job = state["jobs"].get(job_id)
        if job is None:
            return None
        if job["state"] not in FINAL:
            job["kill"] = True
            job["kill_reason"] = reason
        return str(job["state"])


def _update(directory: Path, job_id: str, **fields: Any) -> dict[str, Any]:
    with locked(directory) as state:
        job = state["jobs"][job_id]
        job.update(fields)
        return dict(job)


def _read(directory: Path, job_id: str) -> dict[str, Any]:
    with locked(directory) as state:
        return dict(state["jobs"][job_id])


def _terminate(pgid: int, sequence: tuple[int, ...]) -> None:
    for sig in sequence:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        time.sleep(0.3)


def run(directory: Path, job_id: str) -> None:
    """The runner: wait while pending, run the job, enforce kill requests and limits."""
    job = _read(directory, job_id)
    deadline = time.time() + job["pend_s"]
    while time.time() < deadline:
        if _read(directory, job_id)["kill"]:
            _update(directory, job_id, state="killed", end_time=time.time(),
                    reason=job.get("kill_reason", ""))
            return
        time.sleep(0.05)
    out = open(job["stdout"], "ab") if job.get("stdout") else subprocess.DEVNULL
    env = {**os.environ, **job.get("env", {})}
    try:
        child = subprocess.Popen(job["argv"], cwd=job.get("cwd") or None, env=env,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    except OSError as exc:
        _update(directory, job_id, state="exit", exit_code=127, end_time=time.time(),
                reason=f"cannot start: {exc}")
        return
    _update(directory, job_id, state="running", start_time=time.time(), pid=child.pid)
    limit = job.get("limit_s")
    started = time.time()
    final, reason = None, ""
    while child.poll() is None:
        current = _read(directory, job_id)
        if current["kill"]:
            _terminate(child.pid, tuple(job.get("kill_signals", (signal.SIGTERM, signal.SIGKILL))))
            final, reason = "killed", current.get("kill_reason", "")
            break
        if limit and time.time() - started > limit:
            _terminate(child.pid, (signal.SIGTERM, signal.SIGKILL))
            final, reason = "timeout", "run limit"
            break
        time.sleep(0.05)
    code = child.wait()
    if code < 0:
        code = 128 - code
    if final is None:
        final = "done" if code == 0 else "exit"
    _update(directory, job_id, state=final, exit_code=code, end_time=time.time(), reason=reason)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run(Path(sys.argv[2]), sys.argv[3])
    else:
        sys.stderr.write("usage: fakequeue.py run <state_dir> <job_id>\n")
        sys.exit(2)

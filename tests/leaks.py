"""No stray processes: find the processes a test run started that are still alive.

A run is marked by ``SFTEST_RUN_ID`` in the environment of the pytest process
(scripts/run-tests.sh exports it; tests/conftest.py sets it otherwise); every process the
tests start inherits it (redis-server, gateways, workers, orphan guards, ``simfarm up``,
jobs - a job's environment drops only ``SIMFARM_*``). Other engineers' runs on this
machine have their own id; the system Redis and the shared SLURM daemons have none.

``python -m tests.leaks RUN_ID`` (the end of scripts/run-tests.sh) lists the leftovers,
kills them and exits 1 if there were any.
"""

from __future__ import annotations

import os
import sys
import time

import psutil

MARKER = "SFTEST_RUN_ID"
#: Started by a run when they were not running (tests/slurm/slurm-up.sh), meant to stay.
SHARED_DAEMONS = frozenset({"slurmctld", "slurmd", "slurmstepd", "slurmdbd", "munged"})
XDIST_WORKER = "exec(eval(sys.stdin.readline()))"  # execnet's bootstrap of a pytest worker


def leftovers(run_id: str) -> list[psutil.Process]:
    """Live processes of run ``run_id`` other than this one and its ancestors."""
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.pid in skip:
            continue
        try:
            if proc.environ().get(MARKER) != run_id:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE or proc.info["name"] in SHARED_DAEMONS:
                continue
        except psutil.Error:
            continue
        if XDIST_WORKER in " ".join(proc.info["cmdline"] or []):
            continue
        found.append(proc)
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {proc.pid}: (exited)"


def check(run_id: str, grace_s: float = 10.0) -> list[str]:
    """Wait up to ``grace_s`` for the run's processes to end (some are still stopping),
    then kill what is left; returns their descriptions (empty: nothing was left)."""
    deadline = time.monotonic() + grace_s
    left = leftovers(run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftovers(run_id)
    described = [describe(p) for p in left]
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return described


def main() -> None:
    run_id = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(MARKER, "")
    if not run_id:
        sys.exit("usage: python -m tests.leaks RUN_ID")
    left = check(run_id)
    for line in left:
        print(f"left running by the test run (killed now): {line}", file=sys.stderr)
    sys.exit(1 if left else 0)


if __name__ == "__main__":
    main()

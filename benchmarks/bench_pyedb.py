"""PyEDB's job manager service (pyedb 0.65.2, local mode) and simfarm on PyEDB's routes,
side by side, with the same client, payload, fake solver and concurrency.

Run: ``PYEDB_PYTHON=.venv-pyedb/bin/python PYTHONPATH=. python -m benchmarks.bench_pyedb
[--jobs 500]``, after ``make pyedb-venv`` (a venv with ``pyedb==0.65.2``; 0.64/0.65 ship
``pyedb.workflows.job_manager``).

PyEDB's service picks its scheduler by looking for ``sinfo``/``bhosts`` on PATH; where
SLURM's client tools are installed (as on simfarm's test machines) it forwards every
job to ``sbatch`` and runs none itself. Here it is forced to local mode: the launcher
replaces ``JobManagerHandler._detect_scheduler`` with one that answers
``SchedulerType.NONE`` before the service starts, and the benchmark checks
``GET /api/scheduler_type`` says ``none``. Its local concurrency
(``--max-concurrent-jobs``) equals the simfarm worker's ``worker_concurrency``.

Both sides get the same FAKE ``ansysedt`` (tests/fakes/ansysedt) through
``ANSYSEM_ROOT252`` (PyEDB refuses to start without an installed AEDT) and are driven
by one ``httpx`` client, requests one after the other:

Both services run at once. Phases 1 and 2 alternate between them (50 submits to one,
then 50 to the other; one ``GET`` each in turn), so a change of the shared machine's
load hits both alike; phases 3 and 4 run on one service, then on the other.

1. ``POST /jobs/submit`` of ``--jobs`` HFSS configs, each with its own ``jobid``:
   accepted submits per second, submit p50;
   with nothing solving (PyEDB's ``max_concurrent_jobs`` 0, the simfarm worker held by its
   local limit ``max_jobs`` 0): accepted submits per second ("idle"), submit p50;
2. solving allowed (``PUT /pool/limits``; ``PATCH /api/v1/workers/<node>/limits``), once
   every job has finished: ``GET /api/jobs`` with those jobs listed, p50 and p99;
3. ``--jobs`` more while jobs solve: submits per second ("busy") and end-to-end jobs per
   second from the first of them to the last finish (polling ``GET /api/jobs``);
4. ``--lost`` configs without a ``jobid``, as fast as the client sends them: how many
   never show up in ``GET /api/jobs`` (PyEDB names such a job ``RSM_<second>``, so all
   but one per second are taken for duplicates and dropped).

Targets (issue 15): accepted submits >= 1.5x PyEDB; ``GET /api/jobs`` >= 2x faster
(p50 and p99). The machine is shared: compare the ratios within one run and repeat.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import ROOT, farm, percentile
from simfarm.client.embedded import free_port, wait_until

FAKES = ROOT / "tests" / "fakes"
CONCURRENCY = 2
CHUNK = 50  # idle submits sent to one service before the other's turn
FINAL = {"completed", "failed", "cancelled"}
# PyEDB's own start_service.py, with scheduler detection answered "none" (local mode).
LAUNCHER = """
import sys
from pyedb.workflows.job_manager.backend import job_manager_handler, start_service
from pyedb.workflows.job_manager.backend.job_submission import SchedulerType
job_manager_handler.JobManagerHandler._detect_scheduler = staticmethod(
    lambda: SchedulerType.NONE)
sys.argv = ["start_service.py", *sys.argv[1:]]
start_service.main()
"""


@dataclass
class Figures:
    """One side's numbers."""

    idle_submits_per_s: float
    idle_submit_p50: float
    busy_submits_per_s: float
    e2e_per_s: float
    list_p50: float
    list_p99: float
    listed: int
    failed: int
    lost: int


def _config(project: Path, jobid: str | None) -> dict[str, object]:
    config: dict[str, object] = {"project_path": str(project), "user": "bench"}
    if jobid is not None:
        config["jobid"] = jobid
    return {"config": config, "priority": 0}


def _statuses(http: httpx.Client) -> list[dict[str, object]]:
    response = http.get("/api/jobs")
    response.raise_for_status()
    jobs: list[dict[str, object]] = response.json()
    return jobs


def _submit(http: httpx.Client, project: Path, ids: list[str | None]) -> tuple[float, float]:
    """POST ``/jobs/submit`` for each id (None: no jobid); (submits/s, p50 seconds)."""
    times = []
    start = time.perf_counter()
    for jobid in ids:
        t = time.perf_counter()
        response = http.post("/jobs/submit", json=_config(project, jobid))
        times.append(time.perf_counter() - t)
        if response.status_code >= 300:
            raise SystemExit(f"submit {response.status_code} {response.text[:300]}")
    return len(ids) / (time.perf_counter() - start), percentile(times, 50)


def _wait_finished(http: httpx.Client, count: int) -> list[dict[str, object]]:
    deadline = time.perf_counter() + 900
    while True:
        listed = _statuses(http)
        if sum(1 for j in listed if j["status"] in FINAL) >= count:
            return listed
        if time.perf_counter() > deadline:
            raise SystemExit("jobs not finished after 900 s")
        time.sleep(0.2)


@dataclass
class Side:
    """One service under test: its URL and how to let its jobs run."""

    tag: str
    url: str
    start_solving: Callable[[], None]


def drive(sides: list[Side], jobs: int, lost_probe: int, project: Path) -> list[Figures]:
    """The measurements against both services, both up at once. The idle submits and
    the ``GET /api/jobs`` timings alternate between them (chunks of ``CHUNK`` submits,
    one GET each in turn), so a change in the shared machine's load hits both alike;
    solving, busy submits and the lost-jobs probe run one service after the other."""
    clients = [httpx.Client(base_url=side.url, timeout=120) for side in sides]
    try:
        spent = [0.0] * len(sides)
        p50s: list[list[float]] = [[] for _ in sides]
        for start in range(0, jobs, CHUNK):
            for n, (side, http) in enumerate(zip(sides, clients, strict=True)):
                ids: list[str | None] = [f"BENCH_{side.tag}_{i}"
                                         for i in range(start, min(jobs, start + CHUNK))]
                t = time.perf_counter()
                _, p50 = _submit(http, project, ids)
                spent[n] += time.perf_counter() - t
                p50s[n].append(p50)
        list_times: list[list[float]] = [[] for _ in sides]
        counts = [0] * len(sides)
        for round_ in range(100):
            order = list(range(len(sides)))[:: 1 if round_ % 2 == 0 else -1]
            for n in order:
                t = time.perf_counter()
                counts[n] = len(_statuses(clients[n]))
                list_times[n].append(time.perf_counter() - t)
        out = []
        for n, (side, http) in enumerate(zip(sides, clients, strict=True)):
            start_t = time.perf_counter()
            side.start_solving()
            busy_rate, _ = _submit(http, project, [f"BENCH_{side.tag}_b{i}" for i in range(jobs)])
            listed = _wait_finished(http, 2 * jobs)
            e2e = 2 * jobs / (time.perf_counter() - start_t)
            failed = sum(1 for j in listed if j["status"] != "completed")
            before = {str(j["id"]) for j in listed}
            _submit(http, project, [None] * lost_probe)
            new = {str(j["id"]) for j in _statuses(http)} - before
            out.append(Figures(jobs / spent[n], percentile(p50s[n], 50), busy_rate, e2e,
                               percentile(list_times[n], 50), percentile(list_times[n], 99),
                               counts[n], failed, lost_probe - len(new)))
        return out
    finally:
        for http in clients:
            http.close()


def pyedb_service(python: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """PyEDB's job manager service, local mode, running no job until :func:`pyedb_solve`."""
    proc = subprocess.Popen(
        [python, "-c", LAUNCHER, "--host", "localhost", "--port", str(port),
         "--max-concurrent", "0", "--max-concurrent-jobs", "0",
         "--min-disk", "0", "--min-memory", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://localhost:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/api/queue", timeout=2).is_success, 60,
                   "PyEDB's job manager service")
        mode = httpx.get(f"{url}/api/scheduler_type", timeout=5).json()["scheduler_type"]
        if mode != "none":
            raise SystemExit(f"PyEDB's service runs in {mode!r} mode, not local")
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return proc


def pyedb_solve(url: str) -> None:
    """Let PyEDB's service run ``CONCURRENCY`` jobs at a time (its ``PUT /pool/limits``)."""
    response = httpx.put(f"{url}/pool/limits", json={"max_concurrent_jobs": CONCURRENCY},
                         timeout=30)
    response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--lost", type=int, default=100,
                        help="configs sent without a jobid for the lost-jobs count")
    parser.add_argument("--solve-s", type=float, default=0.05,
                        help="FAKE_ANSYSEDT_SECONDS: how long each fake solve takes")
    args = parser.parse_args()
    python = os.environ.get("PYEDB_PYTHON", str(ROOT / ".venv-pyedb" / "bin" / "python"))
    if not Path(python).exists():
        raise SystemExit(f"no PyEDB interpreter at {python}: run `make pyedb-venv` or set "
                         "PYEDB_PYTHON")
    # The fake is a Python script started through ``env python3``: put a plain
    # interpreter first on PATH so neither side pays for a version manager's shim.
    fake = {"ANSYSEM_ROOT252": str(FAKES), "FAKE_ANSYSEDT_SECONDS": str(args.solve_s),
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    env = dict(os.environ, **fake)
    project = Path(tempfile.mkdtemp()) / "board.aedt"
    project.write_text("$begin 'AnsoftProject'\n$end 'AnsoftProject'\n")
    port = free_port()
    pyedb = pyedb_service(python, port, env)
    url = f"http://localhost:{port}"
    try:
        os.environ.update(fake)
        with farm() as the_farm:
            # The gateway takes HFSS jobs only when a live worker has AEDT: the worker
            # runs, held by its local limit max_jobs = 0 (as PyEDB's max_concurrent_jobs 0).
            # Its jobs inherit the fake's knobs (benchmarks.common.Farm.env), as PyEDB's
            # solves inherit its whole environment.
            the_farm.start_worker("bench-aedt", worker_concurrency=CONCURRENCY, node_cores=4)
            limits = f"{the_farm.url}/api/v1/workers/bench-aedt/limits"
            httpx.patch(limits, json={"max_jobs": 0}, timeout=30).raise_for_status()

            def release() -> None:
                httpx.patch(limits, json={"max_jobs": None}, timeout=30).raise_for_status()

            theirs, ours = drive([Side("pyedb", url, lambda: pyedb_solve(url)),
                                  Side("simfarm", the_farm.url, release)],
                                 args.jobs, args.lost, project)
    finally:
        pyedb.terminate()
        try:
            pyedb.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pyedb.kill()
            pyedb.wait(timeout=10)
    print(f"PyEDB 0.65.2 job manager (local mode) vs simfarm on PyEDB's routes: {args.jobs} "
          f"HFSS jobs, unique jobids, one client, {CONCURRENCY} jobs at a time, fake solve "
          f"{args.solve_s:g} s")
    print("  submits/s idle: nothing solving (PyEDB max_concurrent_jobs 0, simfarm worker held "
          "by max_jobs 0); busy: while jobs solve")
    print(f"  {'':8} {'submits/s':>10} {'submit p50':>11} {'busy subm/s':>12} "
          f"{'e2e jobs/s':>11} {'GET /api/jobs p50':>18} {'p99':>9} {'listed':>7} "
          f"{'failed':>7} {'lost w/o jobid':>15}")
    for name, f in (("PyEDB", theirs), ("simfarm", ours)):
        print(f"  {name:8} {f.idle_submits_per_s:10.0f} {f.idle_submit_p50 * 1000:9.2f}ms "
              f"{f.busy_submits_per_s:12.0f} {f.e2e_per_s:11.1f} {f.list_p50 * 1000:16.2f}ms "
              f"{f.list_p99 * 1000:7.2f}ms {f.listed:7} {f.failed:7} {f.lost:9} of {args.lost}")
    submit_ratio = ours.idle_submits_per_s / theirs.idle_submits_per_s
    busy_ratio = ours.busy_submits_per_s / theirs.busy_submits_per_s
    p50_ratio = theirs.list_p50 / ours.list_p50
    p99_ratio = theirs.list_p99 / ours.list_p99
    print(f"  simfarm / PyEDB: submits {submit_ratio:.2f}x idle, {busy_ratio:.2f}x busy; e2e "
          f"{ours.e2e_per_s / theirs.e2e_per_s:.2f}x; GET /api/jobs {p50_ratio:.2f}x faster "
          f"(p50), {p99_ratio:.2f}x (p99)")
    print(f"target accepted submits >= 1.5x PyEDB: "
          f"{'met' if min(submit_ratio, busy_ratio) >= 1.5 else 'NOT met'}"
          f" ({submit_ratio:.2f}x idle, {busy_ratio:.2f}x busy)")
    print(f"target GET /api/jobs >= 2x faster than PyEDB, p50 and p99: "
          f"{'met' if min(p50_ratio, p99_ratio) >= 2 else 'NOT met'} "
          f"({p50_ratio:.2f}x, {p99_ratio:.2f}x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

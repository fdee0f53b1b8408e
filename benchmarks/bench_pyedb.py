"""The same submit/status work against PyEDB's job manager service and simfarm, side by side.

Run: ``PYEDB_PYTHON=/path/to/venv-with-pyedb/bin/python PYTHONPATH=. python -m
benchmarks.bench_pyedb [--jobs 200]`` (``pip install "pyedb==0.65.*"`` in that venv:
0.64/0.65 ship ``pyedb.workflows.job_manager``).

PyEDB's service refuses to start without an installed AEDT (``IndexError`` in
``JobManagerHandler.__init__``), so both sides get the same FAKE ``ansysedt``
(tests/fakes/ansysedt) through ``ANSYSEM_ROOT252``. Both are driven through the routes
PyEDB defines, with PyEDB's JSON: ``POST /api/submit`` then ``GET /api/jobs``; simfarm
serves them from its compatibility layer (jobs stored in Redis, run by a worker).
One client, requests one after the other; medians and rates from the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import ROOT, farm, median
from simfarm.client.embedded import free_port, wait_until

FAKES = ROOT / "tests" / "fakes"


def _drive(url: str, jobs: int, project: Path) -> tuple[float, float, float]:
    """(submits per second, median submit s, median GET /api/jobs s)."""
    submit_times: list[float] = []
    list_times: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        start = time.perf_counter()
        for i in range(jobs):
            body = {"config": {"project_path": str(project), "jobid": f"BENCH_{i}_{os.getpid()}",
                               "user": "bench"}, "priority": 0}
            t = time.perf_counter()
            response = http.post("/api/submit", json=body)
            submit_times.append(time.perf_counter() - t)
            if response.status_code >= 300:
                raise SystemExit(f"{url}: submit {response.status_code} {response.text[:300]}")
        rate = jobs / (time.perf_counter() - start)
        for _ in range(50):
            t = time.perf_counter()
            http.get("/api/jobs").raise_for_status()
            list_times.append(time.perf_counter() - t)
    return rate, median(submit_times), median(list_times)


def _pyedb_service(python: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    script = subprocess.run(
        [python, "-c", "import pyedb.workflows.job_manager.backend.start_service as m; "
                       "print(m.__file__)"], capture_output=True, text=True, check=True,
    ).stdout.strip()
    proc = subprocess.Popen([python, script, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: httpx.get(f"http://localhost:{port}/api/queue", timeout=2).is_success,
               60, "PyEDB's job manager service")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    python = os.environ.get("PYEDB_PYTHON", sys.executable)
    env = dict(os.environ, ANSYSEM_ROOT252=str(FAKES), FAKE_ANSYSEDT_SECONDS="0.05")
    project = Path(tempfile.mkdtemp()) / "board.aedt"
    project.write_text("$begin 'AnsoftProject'\n$end 'AnsoftProject'\n")
    port = free_port()
    try:
        pyedb = _pyedb_service(python, port, env)
    except (subprocess.CalledProcessError, TimeoutError) as exc:
        print(f"PyEDB's job manager could not start here: {exc}")
        return
    try:
        theirs = _drive(f"http://localhost:{port}", args.jobs, project)
    finally:
        pyedb.terminate()
        pyedb.wait(timeout=20)
    os.environ.update(ANSYSEM_ROOT252=str(FAKES), FAKE_ANSYSEDT_SECONDS="0.05")
    with farm() as the_farm:
        the_farm.start_worker("bench-aedt", worker_concurrency=1, node_cores=4)
        ours = _drive(the_farm.url, args.jobs, project)
    print(f"PyEDB job manager (pyedb 0.65, aiohttp) vs simfarm, {args.jobs} submissions, "
          "one client, PyEDB's routes and JSON:")
    print(f"  {'':22} {'submits/s':>10} {'submit p50':>11} {'GET /api/jobs p50':>18}")
    for name, (rate, submit, listing) in (("PyEDB", theirs), ("simfarm", ours)):
        print(f"  {name:22} {rate:10.0f} {submit * 1000:9.2f}ms {listing * 1000:16.2f}ms")
    print(f"  simfarm / PyEDB submit rate: {ours[0] / theirs[0]:.2f}x")


if __name__ == "__main__":
    main()

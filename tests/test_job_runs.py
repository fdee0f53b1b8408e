"""Jobs run end to end: gateway → Redis → dispatcher → Celery worker → process → status."""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx
import psutil
import redis

from simfarm.common.models import NodeInfo
from simfarm.common.store import JobStore, NodeStore
from tests.helpers import wait_for

PY = sys.executable


def submit(http: httpx.Client, **spec: Any) -> str:
    response = http.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(http.get(f"/api/v1/jobs/{job_id}").json())


def wait_state(
    http: httpx.Client, job_id: str, *states: str, timeout_s: float = 30
) -> dict[str, Any]:
    return wait_for(
        lambda: job(http, job_id),
        lambda j: j["state"] in states,
        timeout_s,
        f"job {job_id} to reach {states}",
    )


def output(http: httpx.Client, job_id: str) -> list[str]:
    events = http.get(f"/api/v1/jobs/{job_id}/events").json()["events"]
    return [e["data"]["line"] for e in events if e["type"] == "log"]


def test_command_completes_with_output(farm: httpx.Client, redis_client: redis.Redis) -> None:
    job_id = submit(farm, argv=[PY, "-c", "import sys; print(42); print('err', file=sys.stderr)"])
    done = wait_state(farm, job_id, "completed", "failed")
    # the outcome is the job's: Celery's result backend is never written to
    assert not redis_client.keys("celery-task-meta-*")
    assert done["state"] == "completed" and done["exit_code"] == 0
    assert done["node"] and done["started_at"] and done["finished_at"]
    assert sorted(output(farm, job_id)) == ["42", "err"]
    states = [
        e["data"]["to"]
        for e in farm.get(f"/api/v1/jobs/{job_id}/events").json()["events"]
        if e["type"] == "state"
    ]
    assert states == ["pending", "scheduled", "running", "completed"]


def test_output_lines_as_written_long_ones_cut_and_the_last_one_unterminated(
    farm: httpx.Client,
) -> None:
    script = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'crlf\\r\\n' + b'x' * 100000 + b'\\nhalf'); out.flush()\n"
        "time.sleep(0.3)\n"  # the rest of the line comes in a later read
        "out.write(b' line\\n\\xff bad byte\\nlast'); out.flush()\n"
    )
    job_id = submit(farm, argv=[PY, "-c", script])
    assert wait_state(farm, job_id, "completed", "failed")["state"] == "completed"
    lines = output(farm, job_id)
    assert lines[0] == "crlf" and lines[1] == "x" * 8192  # cut at 8,192 characters
    assert lines[2:] == ["half line", "\ufffd bad byte", "last"]


def test_failing_command_reports_exit_code(farm: httpx.Client) -> None:
    job_id = submit(farm, argv=[PY, "-c", "import sys; print('boom'); sys.exit(3)"])
    done = wait_state(farm, job_id, "completed", "failed")
    assert done["state"] == "failed" and done["exit_code"] == 3
    assert done["error"] == "exit code 3" and output(farm, job_id) == ["boom"]


def test_missing_program_fails_with_reason(farm: httpx.Client) -> None:
    job_id = submit(farm, argv=["/no/such/program-xyz"])
    done = wait_state(farm, job_id, "completed", "failed")
    assert done["state"] == "failed" and "executable not found" in done["error"]


def test_cancel_pending_job(farm: httpx.Client, node_store: NodeStore) -> None:
    # Only a registered but lost node could run it: accepted, stays pending until cancelled.
    node_store.heartbeat(NodeInfo(name="parked-node", hostname="parked", queue="none",
                                  cores_total=64, labels={"parked": "yes"}), ttl_s=0.01)
    try:
        job_id = submit(farm, argv=["true"],
                        resources={"cores": 64, "labels": {"parked": "yes"}})
        response = farm.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["state"] == "cancelled"
        assert farm.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
    finally:
        node_store.forget("parked-node")


def test_job_no_node_could_ever_run_is_rejected_with_why(farm: httpx.Client) -> None:
    response = farm.post("/api/v1/jobs", json={"argv": ["true"], "resources": {"cores": 4096}})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "unsatisfiable" and "4096 cores" in body["detail"]
    assert body["fields"][0]["field"] == "resources"


def test_cancel_running_job_kills_process_tree(farm: httpx.Client, store: JobStore) -> None:
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    job_id = submit(farm, argv=[PY, "-c", script])
    wait_for(
        lambda: output(farm, job_id),
        lambda lines: any("child" in ln for ln in lines),
        30,
        "the child process to start",
    )
    parent_pid = store.attempt(job_id).lease.pid or 0
    child_pid = int(next(ln for ln in output(farm, job_id) if ln.startswith("child")).split()[1])
    assert psutil.pid_exists(parent_pid) and psutil.pid_exists(child_pid)
    response = farm.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"]
    done = wait_state(farm, job_id, "cancelled", "failed", "completed")
    assert done["state"] == "cancelled"
    for pid in (parent_pid, child_pid):
        wait_for(
            lambda p=pid: psutil.pid_exists(p) and psutil.Process(p).status() != "zombie",
            lambda alive: not alive,
            10,
            f"process {pid} to be gone",
        )


def test_a_silent_running_job_names_its_process(farm: httpx.Client, store: JobStore) -> None:
    """A job that prints nothing still shows which process runs it once it has run a
    moment (a program that ends at once is not worth that write)."""
    job_id = submit(farm, argv=[PY, "-c", "import time; time.sleep(300)", "silent-job"])
    pid = wait_for(lambda: store.attempt(job_id).lease.pid, lambda p: p is not None, 30,
                   "the running job's pid")
    assert pid is not None
    group = [p for p in psutil.process_iter(["cmdline"])
             if (p.info["cmdline"] or [])[-1:] == ["silent-job"]]
    assert group and all(os.getpgid(p.pid) == pid for p in group)
    farm.post(f"/api/v1/jobs/{job_id}/cancel")
    assert wait_state(farm, job_id, "cancelled", "failed", "completed")["state"] == "cancelled"
    assert store.attempt(job_id).lease.pid is None  # the ended attempt's process is gone


def test_timeout_kills_and_fails(farm: httpx.Client) -> None:
    job_id = submit(
        farm,
        argv=[PY, "-c", "import time; print('start', flush=True); time.sleep(60)"],
        timeout_s=1.0,
    )
    done = wait_state(farm, job_id, "completed", "failed", timeout_s=30)
    assert done["state"] == "failed" and done["reason"].startswith("timeout")
    assert output(farm, job_id) == ["start"]


def test_priority_order_when_node_is_full(farm: httpx.Client) -> None:
    # Fill all 8 cores of test-node, then queue two jobs that only test-node may run:
    # the higher priority one must start first.
    blocker = submit(
        farm,
        argv=[PY, "-c", "import time; time.sleep(60)"],
        resources={"cores": 8, "labels": {"pool": "main"}},
        priority=10,
    )
    wait_state(farm, blocker, "running")
    # Each needs the whole node, so they cannot start together: order is observable.
    main_only = {"cores": 8, "labels": {"pool": "main"}}
    low = submit(farm, argv=["true"], priority=1, resources=main_only)
    high = submit(farm, argv=["true"], priority=9, resources=main_only)
    farm.post(f"/api/v1/jobs/{blocker}/cancel")
    low_done = wait_state(farm, low, "completed")
    high_done = wait_state(farm, high, "completed")
    assert high_done["finished_at"] <= low_done["started_at"]


def test_long_poll_waits_for_next_event(farm: httpx.Client) -> None:
    job_id = submit(farm, argv=[PY, "-c", "import time; time.sleep(0.5); print('late')"])
    events = farm.get(f"/api/v1/jobs/{job_id}/events").json()
    last = events["last_id"]
    seen: list[str] = []
    while "late" not in seen:
        page = farm.get(f"/api/v1/jobs/{job_id}/events", params={"since": last, "wait": 10}).json()
        assert page["events"], "long poll returned no event within 10 s"
        last = page["last_id"]
        seen += [e["data"].get("line", "") for e in page["events"]]

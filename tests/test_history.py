"""Resubmit, history with 100k finished jobs, retention expiry and the audit log, over
real HTTP against real gateway processes."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.models import JobSpec
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, new_job_id
from simfarm.common.store.history import FinishedRecord, HistoryStore
from tests.helpers import free_port, start_gateway, stop_processes, wait_for

PY = sys.executable
FINAL = ("completed", "failed", "cancelled")


def wait_final(http: httpx.Client, job_id: str) -> dict[str, Any]:
    return wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                    lambda j: j["state"] in FINAL, 30, f"job {job_id} to end")


@pytest.fixture
def own_gateway(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """Starts gateways on the session's Redis under a key prefix of their own, so what
    they do (100k jobs, 1-second retention) never touches the other tests' jobs."""
    procs = []

    def start(prefix: str, **overrides: Any) -> tuple[httpx.Client, JobStore]:
        own = settings.model_copy(update={"key_prefix": prefix, "gateway_port": free_port(),
                                          "state_dir": tmp_path / prefix, **overrides})
        (tmp_path / prefix).mkdir()
        procs.append(start_gateway(own, tmp_path / f"{prefix}gateway.log"))
        http = httpx.Client(base_url=f"http://127.0.0.1:{own.gateway_port}", timeout=30)
        return http, JobStore(redis.Redis.from_url(own.require_redis_url()), prefix)

    yield start
    stop_processes(procs)


def test_resubmit_runs_the_stored_spec_again(farm: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "input.txt"
    script = f"import pathlib; print(pathlib.Path({str(marker)!r}).read_text())"
    first = farm.post("/api/v1/jobs", json={"argv": [PY, "-c", script], "name": "needs input"})
    assert wait_final(farm, first.json()["id"])["state"] == "failed"
    marker.write_text("now here")  # the user fixes the cause, then resubmits
    response = farm.post(f"/api/v1/jobs/{first.json()['id']}/resubmit", json={"priority": 8})
    assert response.status_code == 201, response.text
    again = response.json()
    assert again["resubmit_of"] == first.json()["id"] and again["priority"] == 8
    assert again["spec"]["argv"] == first.json()["spec"]["argv"]
    done = wait_final(farm, again["id"])
    assert done["state"] == "completed"
    old = farm.get(f"/api/v1/jobs/{first.json()['id']}").json()
    assert old["resubmitted_as"] == again["id"] and old["state"] == "failed"
    assert farm.post("/api/v1/jobs/nope/resubmit").status_code == 404
    # The dashboard offers the re-run on a finished job and links both ways.
    old_page = farm.get(f"/ui/jobs/{first.json()['id']}").text
    assert f'class="resubmit" data-job="{first.json()["id"]}"' in old_page
    assert f'href="/ui/jobs/{again["id"]}"' in old_page
    assert f'href="/ui/jobs/{first.json()["id"]}"' in farm.get(f"/ui/jobs/{again['id']}").text

    # Every change is in the audit log, with who and from where.
    entries = farm.get("/api/v1/audit", params={"target": first.json()["id"]}).json()["entries"]
    assert [(e["action"], e["status"]) for e in entries] == [("resubmit", 201), ("submit", 201)]
    assert entries[0]["who"] == "anonymous" and entries[0]["source"] == "127.0.0.1"
    assert entries[0]["details"] == {"priority": 8}
    cancel = farm.post(f"/api/v1/jobs/{again['id']}/cancel")
    assert cancel.status_code == 409
    latest = farm.get("/api/v1/audit", params={"action": "cancel", "limit": 1}).json()
    assert latest["entries"][0]["target"] == again["id"]
    assert latest["entries"][0]["status"] == 409


def test_history_pages_stay_fast_with_100k_finished_jobs(own_gateway: Any) -> None:
    http, store = own_gateway("hist100k:", expiry_interval_s=0)
    ids = [new_job_id() for _ in range(100_000)]
    started = time.monotonic()
    before = time.time() - 200
    # 100k jobs through the real submit+finish path take ~20 s here: import them with the
    # same fields and indexes instead (finish times one millisecond apart, in the past).
    spec_json = JobSpec(argv=["true"]).model_dump_json()
    records = [FinishedRecord(i, spec_json, "failed" if n % 3 == 0 else "completed",
                              before + n / 1000, before + n / 1000, exit_code=int(n % 3 == 0))
               for n, i in enumerate(ids)]
    assert HistoryStore(store).import_finished(records) == 100_000
    fill_s = time.monotonic() - started
    print(f"import took {fill_s:.1f} s")
    # One job finished the ordinary way is newest.
    latest = http.post("/api/v1/jobs", json={"argv": ["true"]}).json()["id"]
    assert http.post(f"/api/v1/jobs/{latest}/cancel").status_code == 200
    ids.append(latest)

    def timed(params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        response = http.get("/api/v1/history", params=params)
        assert response.status_code == 200, response.text
        return time.perf_counter() - t0, response.json()

    first_page = timed({"limit": 50})[1]
    assert [j["id"] for j in first_page["jobs"]] == ids[::-1][:50]  # newest first
    times = []
    cursor = None
    seen: list[str] = []
    for _ in range(20):  # walk 20 pages deep, each one range read
        elapsed, page = timed({"limit": 50, **({"cursor": cursor} if cursor else {})})
        times.append(elapsed)
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
    assert seen == ids[::-1][:1000]
    failed = timed({"state": "failed", "limit": 50})
    assert [j["id"] for j in failed[1]["jobs"]] == [i for n, i in enumerate(ids[:-1])
                                                     if n % 3 == 0][::-1][:50]
    times.append(failed[0])
    assert timed({"until": before - 1})[1]["jobs"] == []  # time window filters
    assert timed({"since": time.time() + 200})[1]["jobs"] == []
    median = statistics.median(times)
    print(f"100k finished jobs stored in {fill_s:.1f} s; history page median "
          f"{median * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")
    assert median < 0.1, f"history pages take {median * 1000:.0f} ms with 100k jobs"


def test_retention_expires_finished_jobs_and_unused_blobs(own_gateway: Any) -> None:
    # Retention long enough that a loaded machine still sees the job in the history
    # before it expires.
    http, jobs = own_gateway("expiry:", job_retention_s=5.0, expiry_interval_s=0.2)
    done = http.post("/api/v1/jobs", json={"argv": ["true"]}).json()
    waiting = http.post("/api/v1/jobs", json={"argv": ["true"]}).json()
    assert http.post(f"/api/v1/jobs/{done['id']}/cancel").status_code == 200
    assert [j["id"] for j in http.get("/api/v1/history").json()["jobs"]] == [done["id"]]
    blob = b"old results"
    import hashlib

    sha = hashlib.sha256(blob).hexdigest()
    assert http.put(f"/api/v1/blobs/{sha}", content=blob).status_code == 201
    wait_for(lambda: http.get(f"/api/v1/jobs/{done['id']}").status_code, lambda s: s == 404,
             30, "the finished job to expire")
    assert http.get(f"/api/v1/jobs/{done['id']}/events").status_code == 404
    assert http.get("/api/v1/history").json()["jobs"] == []
    assert http.get(f"/api/v1/jobs/{waiting['id']}").json()["state"] == "pending"
    # Watched in the blob index, not with HEAD: a client's HEAD counts as a use of the
    # blob (it checks before it relies on it), so polling with it would keep it alive.
    wait_for(lambda: jobs.connection.zscore(jobs.keys.blobs, sha), lambda score: score is None,
             30, "the unused blob to expire")
    assert http.head(f"/api/v1/blobs/{sha}").status_code == 404
    # The audit log is append-only: the expired job's history of changes stays.
    actions = [e["action"] for e in http.get(
        "/api/v1/audit", params={"target": done["id"]}).json()["entries"]]
    assert actions == ["cancel", "submit"]


def test_audit_names_token_users_and_is_for_admins(own_gateway: Any) -> None:
    from simfarm.common.tokens import TokenEntry, hash_token

    tokens = [TokenEntry(user="alice", hash=hash_token("alice-audit-token-123")),
              TokenEntry(user="bob", hash=hash_token("bob-audit-token-456")),
              TokenEntry(user="root", hash=hash_token("root-audit-token-789"), admin=True)]
    http, _ = own_gateway("audit:", auth_tokens=tokens, expiry_interval_s=0)

    def as_user(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    alice, bob, root = (as_user(t) for t in ("alice-audit-token-123", "bob-audit-token-456",
                                             "root-audit-token-789"))
    job = http.post("/api/v1/jobs", json={"argv": ["true"], "priority": 3}, headers=alice)
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=bob).status_code == 404
    assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=alice).status_code == 200
    assert http.get("/api/v1/audit", headers=alice).status_code == 403
    entries = http.get("/api/v1/audit", params={"target": job_id}, headers=root).json()
    assert [(e["who"], e["action"], e["status"]) for e in entries["entries"]] == [
        ("alice", "cancel", 200), ("bob", "cancel", 404), ("alice", "submit", 201)]
    assert entries["entries"][2]["details"] == {"priority": 3}
    assert http.get("/api/v1/audit", params={"who": "bob"},
                    headers=root).json()["entries"][0]["target"] == job_id


def test_retention_sweep_says_once_that_redis_is_away_and_once_that_it_is_back(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator reading the gateway's log during a Redis outage sees one warning, not a
    traceback every sweep interval, and a line when the sweep runs again."""
    import logging
    import threading

    from simfarm.gateway.expiry import Expirer
    from simfarm.gateway.services import build_services
    from tests.conftest import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    own = settings.model_copy(update={"redis_url": server.url, "key_prefix": "sweeplog:",
                                      "expiry_interval_s": 0.05})
    expirer = Expirer(build_services(own))
    turns = 0
    turned = threading.Condition()
    take_turn = expirer._take_turn

    def counted(interval: float) -> bool:
        nonlocal turns
        try:
            return take_turn(interval)
        finally:
            with turned:
                turns += 1
                turned.notify_all()

    def after(more: int) -> None:  # wait for that many more sweep intervals
        with turned:
            goal = turns + more
            assert turned.wait_for(lambda: turns >= goal, 30), "the sweep stopped"

    expirer._take_turn = counted  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="simfarm.gateway.expiry")
    try:
        expirer.ensure_started()
        after(2)
        server.stop(kill=True)
        after(10)  # ten sweeps while Redis is away
        server.start()  # the same port
        wait_for(lambda: [r.getMessage() for r in caplog.records],
                 lambda m: "retention sweep resumed: Redis is back" in m, 30, "the sweep to resume")
    finally:
        expirer.stop()
        server.stop()
    records = [r for r in caplog.records if r.name == "simfarm.gateway.expiry"]
    paused = [r for r in records if r.getMessage().startswith("retention sweep paused")]
    assert len(paused) == 1 and paused[0].levelno == logging.WARNING
    assert not [r for r in records if r.levelno >= logging.ERROR]

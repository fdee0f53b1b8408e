"""Usage accounting with real processes (the team farm of tests/test_team_farm.py: two
Celery workers, one private redis-server, the real gateway over HTTP in token mode;
alice charges cfd, bob em, root is an admin). The report must match the jobs that ran,
computed here independently from each job's own state events (when each attempt started
and ended) and its cores; users see only their own rows; the CLI prints it as a table,
JSON and CSV; a worker killed mid-job does not make its attempt count twice; usage
outlives the expired jobs, and the retention sweep trims days past retention."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from simfarm.client import AsyncClient, Client
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore
from simfarm.common.store.usage import UsageStore
from simfarm.common.usage import DAY_S, UsageReport, day_of
from tests import test_team_farm
from tests.helpers import start_worker, wait_for
from tests.test_history import own_gateway  # noqa: F401 (a gateway with its own prefix)
from tests.test_team_farm import TOKENS, Farm
from tests.test_usage_rollups import _run

farm = test_team_farm.farm  # the team farm's fixture: a farm of this module's own

pytestmark = pytest.mark.timeout(240)
#: sleeps 60 s the first time it runs (it leaves a marker file), 2 s after that
RUN_ONCE_LONG = ("import os, sys, time; first = not os.path.exists(sys.argv[1]); "
                 "open(sys.argv[1], 'a').close(); time.sleep(60 if first else 2)")


def _expected(farm: Farm) -> dict[str, dict[str, dict[str, float]]]:
    """By user, account and node: core-seconds and ended attempts of every job of the
    farm, from the job's state events: an attempt runs from its ``running`` event to the
    next state event (its end), on the node that event names, with the job's cores."""
    root = farm.users["root"]
    out: dict[str, dict[str, dict[str, float]]] = {
        by: defaultdict(lambda: defaultdict(float)) for by in ("user", "account", "node")}
    for job in root.get("/api/v1/jobs", params={"limit": 1000}).json()["jobs"]:
        events = root.get(f"/api/v1/jobs/{job['id']}/events").json()["events"]
        start: tuple[float, str] | None = None
        for event in (e for e in events if e["type"] == "state"):
            data = event["data"]
            if data.get("to") == "running":
                start = (event["ts"], data["node"])
            elif start is not None and data.get("from") == "running":
                cores = job["spec"]["resources"]["cores"]
                for by, name in (("user", job["owner"]), ("account", job["spec"]["account"]),
                                 ("node", start[1])):
                    out[by][name]["core_s"] += cores * (event["ts"] - start[0])
                    out[by][name]["attempts"] += 1
                start = None
    return out


def _report(farm: Farm, user: str, **params: str) -> dict[str, Any]:
    response = farm.users[user].get("/api/v1/usage", params={"since": "2d", **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ran(farm: Farm, jobs: list[tuple[str, str, int]]) -> list[str]:
    """Submit ``(user, node, cores)`` jobs of a fraction of a second and wait for them."""
    ids = [farm.submit(user, argv=["sleep", "0.4"],
                       resources={"cores": cores, "labels": {"node": node}})
           for user, node, cores in jobs]
    for job_id in ids:
        assert farm.wait_state(job_id, "completed", "failed")["state"] == "completed"
    return ids


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["rows"]}


def test_the_report_matches_the_jobs_that_ran(farm: Farm) -> None:
    _ran(farm, [("alice", "n1", 1), ("alice", "n2", 2), ("bob", "n1", 2), ("alice", "n1", 2)])
    expected = _expected(farm)
    for by in ("user", "account", "node"):
        rows = _by_name(_report(farm, "root", by=by))
        assert set(rows) == set(expected[by]), by
        for name, want in expected[by].items():
            assert rows[name]["attempts"] == want["attempts"], (by, name)
            assert rows[name]["core_seconds"] == pytest.approx(want["core_s"], abs=0.05), \
                (by, name)
            assert rows[name]["core_hours"] == pytest.approx(rows[name]["core_seconds"] / 3600)
    # per day: every attempt ran today (UTC), so one row per account, dated today
    daily = _report(farm, "root", by="account", bucket="day")
    today = datetime.now(UTC).date().isoformat()
    assert {r["day"] for r in daily["rows"]} == {today} and daily["until"] == today
    assert {r["name"]: r["core_seconds"] for r in daily["rows"]} == pytest.approx(
        {n: w["core_s"] for n, w in expected["account"].items()}, abs=0.05)
    # a job's own record says the same
    job = farm.job(farm.submit("bob", argv=["sleep", "0.2"], resources={"cores": 2}))
    done = farm.wait_state(job["id"], "completed")
    [attempt] = done["usage"]
    ran = (datetime.fromisoformat(done["finished_at"])
           - datetime.fromisoformat(done["started_at"])).total_seconds()
    assert (attempt["user"], attempt["account"], attempt["cores"]) == ("bob", "em", 2)
    assert attempt["ended"] == "completed" and attempt["node"] == done["node"]
    assert attempt["core_s"] == pytest.approx(2 * ran, abs=1e-3)


def test_users_see_only_their_own_rows(farm: Farm) -> None:
    _ran(farm, [("alice", "n1", 1), ("bob", "n2", 1)])
    expected = _expected(farm)
    mine = _report(farm, "alice", by="user")
    assert mine["scope"] == "alice" and [r["name"] for r in mine["rows"]] == ["alice"]
    assert mine["rows"][0]["core_seconds"] == pytest.approx(
        expected["user"]["alice"]["core_s"], abs=0.05)
    # by node: alice's own usage on each node, not the node's total
    alice_nodes = _by_name(_report(farm, "alice", by="node"))
    bob_nodes = _by_name(_report(farm, "bob", by="node"))
    everyone = _by_name(_report(farm, "root", by="node"))
    for node in ("n1", "n2"):
        ours = sum(r[node]["core_seconds"] for r in (alice_nodes, bob_nodes) if node in r)
        assert ours == pytest.approx(everyone[node]["core_seconds"], abs=1e-6)
    assert set(_by_name(_report(farm, "bob", by="account"))) == {"em"}
    assert _report(farm, "root", by="user")["scope"] == "all"


@pytest.mark.parametrize(("params", "field"), [
    ({"by": "project"}, "by"), ({"bucket": "week"}, "bucket"),
    ({"since": "yesterday"}, "since"), ({"until": "2020-13-01"}, "until"),
    ({"since": "1d", "until": "3d"}, "since"), ({"owner": "bob"}, "owner"),
])
def test_bad_parameters_are_refused_with_the_field(farm: Farm, params: dict[str, str],
                                                   field: str) -> None:
    response = farm.users["alice"].get("/api/v1/usage", params=params)
    assert response.status_code == 400, response.text
    [problem] = response.json()["fields"]
    assert problem["field"] == field and problem["reason"]


def test_cli_prints_a_table_json_and_csv(farm: Farm) -> None:
    _ran(farm, [("alice", "n2", 1), ("bob", "n1", 1)])
    table = farm.cli("root", "usage", "--by", "account", "--since", "30d")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["ACCOUNT", "DAY", "ATTEMPTS"]
    assert {line.split("\t")[0] for line in lines[1:]} == {"cfd", "em", "total"}
    as_json = farm.cli("root", "usage", "--by", "account", "--since", "30d", "--json")
    report = UsageReport.model_validate(json.loads(as_json.stdout))
    as_csv = farm.cli("root", "usage", "--by", "account", "--since", "30d", "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["name"]: float(r["core_seconds"]) for r in rows} == pytest.approx(
        {r.name: r.core_seconds for r in report.rows}, abs=1e-3)
    alice = json.loads(farm.cli("alice", "usage", "--by", "user", "--json").stdout)
    assert [r["name"] for r in alice["rows"]] == ["alice"]
    bad = farm.cli("alice", "usage", "--since", "yesterday")
    assert bad.returncode == 1 and "since" in bad.stderr


def test_client_and_async_client_read_the_report(farm: Farm) -> None:
    _ran(farm, [("alice", "n1", 1), ("bob", "n2", 1)])
    url = str(farm.users["root"].base_url).rstrip("/")
    with Client(url, token=TOKENS["bob"]) as client:
        report = client.usage(by="node", since="7d", bucket="day")
    assert report.scope == "bob" and report.by == "node" and report.rows

    async def read() -> UsageReport:
        async with AsyncClient(url, token=TOKENS["root"]) as client:
            return await client.usage(by="user", since=-3600)

    assert {"alice", "bob"} <= {r.name for r in asyncio.run(read()).rows}


def test_a_worker_killed_mid_job_is_counted_once(farm: Farm) -> None:
    def start(name: str) -> None:
        node = farm.settings.model_copy(update={
            "node_name": name, "node_cores": 2, "worker_concurrency": 1,
            "node_labels": {"rescue": "yes"}})
        farm.procs[name] = start_worker(node, farm.root / f"{name}.log")
        wait_for(lambda: farm.nodes.is_alive(name), bool, 60, f"worker {name}")

    start("victim")
    # the first run outlasts the rescuer's start however loaded the machine; the rerun is short
    marker = farm.root / "first-run"
    job_id = farm.submit("alice", argv=[sys.executable, "-c", RUN_ONCE_LONG, str(marker)],
                         retries=1, resources={"cores": 2, "labels": {"rescue": "yes"}})
    assert farm.wait_state(job_id, "running")["node"] == "victim"
    start("rescuer")
    os.kill(farm.procs["victim"].pid, signal.SIGKILL)
    done = farm.wait_state(job_id, "completed", "failed", timeout_s=90)
    assert done["state"] == "completed" and done["node"] == "rescuer"
    assert [(u["attempt"], u["node"], u["ended"]) for u in done["usage"]] == [
        (1, "victim", "lost"), (2, "rescuer", "completed")]
    expected = _expected(farm)["node"]
    nodes = _by_name(_report(farm, "root", by="node"))
    for node, ended in (("victim", "lost"), ("rescuer", "completed")):
        assert nodes[node]["attempts"] == 1 and nodes[node]["ended"] == {ended: 1}
        assert nodes[node]["core_seconds"] == pytest.approx(expected[node]["core_s"], abs=0.05)
    # the reaped attempt was charged until it was reaped: longer than it was seen running
    assert nodes["victim"]["core_seconds"] > 0


def test_usage_outlives_its_jobs_and_old_days_are_trimmed(
        own_gateway: Any, settings: Settings) -> None:  # noqa: F811
    prefix = "usage-retention:"
    jobs = JobStore(redis.Redis.from_url(settings.require_redis_url()), prefix)
    now = time.time()
    # attempts recorded by the store's transitions: one 10 days ago, one a minute ago
    old = _run(jobs, owner="", account="default", node="n1", cores=2,
               start=now - 10 * DAY_S, end=now - 10 * DAY_S + 100)
    recent = _run(jobs, owner="", account="default", node="n1", cores=4, start=now - 60,
                  end=now - 30)
    rollups = UsageStore(jobs.connection, prefix)
    assert len(rollups.days(day_of(now) - 30, day_of(now))) == 2
    http, _ = own_gateway(prefix, job_retention_s=1.0, expiry_interval_s=0.2,
                          usage_retention_days=3)
    for job_id in (old, recent):  # the retention sweep forgets the finished jobs...
        wait_for(lambda j=job_id: http.get(f"/api/v1/jobs/{j}").status_code,  # type: ignore[misc]
                 lambda status: status == 404, 15, f"job {job_id} to expire")

    def report() -> dict[str, Any]:
        return dict(http.get("/api/v1/usage", params={"since": "30d"}).json())

    # ...their usage stays, but only for the last usage_retention_days days
    kept = wait_for(report, lambda r: r["total"]["attempts"] == 1, 15,
                    "the old day's roll-up to be trimmed")
    assert kept["total"]["core_seconds"] == pytest.approx(4 * 30)
    kept_days = rollups.days(day_of(now) - 30, day_of(now))
    assert kept_days and day_of(now - 10 * DAY_S) not in kept_days

"""Fair share and limits on a farm shared by a team, with real processes: two worker
processes (``n1``, ``n2``: 2 cores and 2 slots each; ``n2`` has the FAKE AEDT for the
PyEDB routes), one private redis-server, the real gateway over HTTP in token mode.
Users ann (account cfd) and bob (account em) share the farm; carol (account em) has
limits: one running job, two waiting; admin root."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from simfarm.common.accounts import Account
from simfarm.common.user_limits import Limits, LimitSet
from tests.helpers import (
    FAKES,
    wait_for,
)
from tests.team import TeamFarm as Farm
from tests.team import team_farm

pytestmark = pytest.mark.timeout(240)

TOKENS = {name: f"{name}-token-0123456789" for name in ("ann", "bob", "carol", "root")}
SLOTS = 4
#: a job that runs until the file named by its argument exists
WAIT_FOR_FILE = ("import os, sys, time\n"
                 "while not os.path.exists(sys.argv[1]):\n"
                 "    time.sleep(0.02)\n")


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with team_farm(
            tmp_path_factory.mktemp("fairshare"), TOKENS, http_timeout_s=60, wait_s=60,
            worker_env={"n2": {"ANSYSEM_ROOT252": str(FAKES), "FAKE_ANSYSEDT_SECONDS": "0.3"}},
            accounts=[Account(name="cfd", shares=1, users=("ann",)),
                      Account(name="em", shares=1, users=("bob", "carol"))],
            limits=Limits(users={"carol": LimitSet(max_running_jobs=1,
                                                   max_pending_jobs=2)})) as running:
        yield running


def started(job: dict[str, Any]) -> float:
    return datetime.fromisoformat(job["started_at"]).timestamp()


def test_a_flood_does_not_keep_another_user_waiting(farm: Farm) -> None:
    flood = farm.batch("ann", [{"argv": ["sleep", "0.3"]} for _ in range(500)])
    # ann has the farm to herself for a while: she builds up usage
    wait_for(lambda: sum(j["state"] == "completed" for j in farm.jobs(flood[:24])),
             lambda n: n >= 24, 60, "ann's first jobs to complete")
    mine = farm.batch("bob", [{"argv": ["sleep", "0.3"]} for _ in range(20)])
    done = [farm.wait_state(j, "completed") for j in mine]
    came = max(datetime.fromisoformat(j["created_at"]).timestamp() for j in done)
    last = max(started(j) for j in done)
    # every placement after bob came went to bob, but for the slots being filled then
    flooded = [j for j in farm.jobs(flood) if j.get("started_at")
               and came < started(j) < last]
    assert len(flooded) <= SLOTS, f"{len(flooded)} of ann's jobs started before bob's last"
    waiting = next(j for j in farm.jobs(flood[-50:]) if j["state"] == "pending")
    # the fair-share report shows ann's account far above its share
    share = farm.users["bob"].get("/api/v1/fairshare")
    assert share.status_code == 200, share.text
    body = share.json()
    accounts = {a["account"]: a for a in body["accounts"]}
    assert accounts["cfd"]["share"] == pytest.approx(1 / 3)  # cfd, em and default: 1 each
    assert accounts["cfd"]["used"] > accounts["cfd"]["share"]
    assert accounts["cfd"]["factor"] < accounts["em"]["factor"]
    assert {(u["account"], u["user"]) for u in body["users"]} >= {("cfd", "ann"), ("em", "bob")}
    assert accounts["cfd"]["over"].startswith("account cfd is over its share: ")
    table = farm.cli("bob", "share")
    assert table.returncode == 0, table.stderr
    assert "cfd" in table.stdout and "ann" in table.stdout and "over its share" in table.stdout
    listed = json.loads(farm.cli("bob", "share", "--json").stdout)
    assert {a["account"] for a in listed["accounts"]} == {"cfd", "em", "default"}
    assert waiting["reason"]  # ann's waiting jobs still say why
    for job in farm.jobs(flood):  # the rest of the flood goes
        if job["state"] == "pending":
            farm.users["ann"].post(f"/api/v1/jobs/{job['id']}/cancel")


def test_limits_refuse_past_pending_and_hold_past_running(farm: Farm, tmp_path: Path) -> None:
    go = tmp_path / "go"  # carol's first job runs until the doors are tried
    first = farm.submit("carol", argv=[sys.executable, "-c", WAIT_FOR_FILE, str(go)])
    farm.wait_state(first, "running")
    second = farm.submit("carol", argv=["true"])
    third = farm.submit("carol", argv=["true"])
    waiting = wait_for(lambda: farm.job(second), lambda j: "limit" in (j["reason"] or ""), 20,
                       "carol's second job to say it waits for her limit")
    assert waiting["state"] == "pending"
    assert waiting["reason"] == ("user carol is at their limit of 1 running jobs "
                                 "(max_running_jobs); it starts when one of those jobs ends")
    # others' jobs go past carol's
    passing = farm.submit("bob", argv=["true"])
    assert farm.wait_state(passing, "completed")["state"] == "completed"
    # a third waiting job is refused at every door, naming the limit
    why = ("user carol may have at most 2 jobs waiting to start (max_pending_jobs); "
           "2 are pending or held")
    carol = farm.users["carol"]
    single = carol.post("/api/v1/jobs", json={"argv": ["true"]})
    assert single.status_code == 429, single.text
    assert single.json()["error"] == "limit_exceeded" and single.json()["detail"] == why
    assert single.json()["fields"] == [{"field": "owner", "reason": why}]
    batch = carol.post("/api/v1/jobs/batch", json={"jobs": [{"argv": ["true"]}]})
    assert batch.status_code == 429 and batch.json()["fields"][0]["field"] == "jobs.0.owner"
    sweep = carol.post("/api/v1/sweeps", json={"template": {"argv": ["echo", "{w}"]},
                                                "grid": {"w": [1]}})
    assert sweep.status_code == 429, sweep.text
    workflow = carol.post("/api/v1/workflows", json={"jobs": {"a": {"argv": ["true"]}}})
    assert workflow.status_code == 429, workflow.text
    project = tmp_path / "board.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=2\n$end 'Setup1'\n")
    pyedb = carol.post("/jobs/submit", json={"config": {
        "project_path": str(project), "jobid": "limited",
        "machine_nodes": [{"hostname": "localhost", "cores": 1, "max_cores": 1}]}})
    assert pyedb.status_code == 429, pyedb.text
    assert pyedb.json()["success"] is False and "max_pending_jobs" in pyedb.json()["detail"]
    cli = farm.cli("carol", "submit", "true")
    assert cli.returncode == 1 and "max_pending_jobs" in (cli.stderr + cli.stdout)
    # the running limit releases: one after another, never two at once
    go.write_text("")
    done = [farm.wait_state(j, "completed") for j in (first, second, third)]
    starts = sorted(started(j) for j in done)
    ends = sorted(datetime.fromisoformat(j["finished_at"]).timestamp() for j in done)
    assert starts[1] >= ends[0] and starts[2] >= ends[1]
    accepted = carol.post("/api/v1/jobs", json={"argv": ["true"]})
    assert accepted.status_code == 201, accepted.text

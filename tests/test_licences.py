"""Floating licences end to end: one private redis-server, the real gateway over HTTP and,
from the dispatch tests on, real worker processes whose dispatcher leader polls the FAKE
FlexLM server (tests/fakes/flexlm) with the FAKE lmutil.

Pools of the farm: ``anshpc`` (16, on 1055@lic01), ``electronics_desktop`` (4, on
1055@lic01) and ``token`` (2, no server: a static count)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from tests.conftest import RedisServer
from tests.helpers import (
    FAKES,
    FarmApi,
    free_port,
    start_gateway,
    start_worker,
    stop_processes,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)
SERVER = "1055@lic01"
POOLS = [{"name": "anshpc", "count": 16, "server": SERVER},
         {"name": "electronics_desktop", "count": 4, "server": SERVER},
         {"name": "token", "count": 2}]
PY = sys.executable
LICENSED = str(FAKES / "flexlm" / "licensed")
#: a job that records "<pid> start <t>" and "<pid> end <t>" and runs until a file exists
HOLD = ("import os, sys, time\n"
        "log = open(sys.argv[1], 'a', buffering=1)\n"
        "log.write(f'{os.getpid()} start {time.time()!r}\\n')\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    time.sleep(0.05)\n"
        "log.write(f'{os.getpid()} end {time.time()!r}\\n')\n")


@dataclass
class LicenceFarm(FarmApi):
    settings: Settings
    root: Path
    http: httpx.Client
    jobs: JobStore
    nodes: NodeStore
    flexlm: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, **overrides: Any) -> None:
        node = self.settings.model_copy(update={"node_name": name, **overrides})
        self.procs[name] = start_worker(node, self.root / f"{name}.log",
                                        FAKE_FLEXLM_DIR=str(self.flexlm))
        wait_for(lambda: self.nodes.is_alive(name), bool, 60, f"worker {name} to register")

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def pools(self) -> dict[str, dict[str, Any]]:
        body = self.http.get("/api/v1/licenses").json()
        return {p["name"]: p for p in body["licenses"]}

    def outside(self, name: str, feature: str, licenses: int, user: str = "alice",
                host: str = "ws12") -> Path:
        """A checkout on the license server by someone outside the farm."""
        folder = self.flexlm / SERVER / "checkouts"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        path.write_text(json.dumps({"feature": feature, "licenses": licenses, "user": user,
                                    "host": host, "display": "/dev/pts/3", "pid": None,
                                    "start": 0}))
        return path

    def hold_job(self, root: Path, licenses: dict[str, int], licensed: bool = False,
                 labels: dict[str, str] | None = None, **spec: Any) -> str:
        """A job that holds ``licenses`` until ``root/release`` exists (checked out of
        the FAKE server with ``licensed``, as AEDT would, when asked)."""
        argv = [PY, "-c", HOLD, str(root / "runs.txt"), str(root / "release")]
        if licensed:
            wanted = ",".join(f"{k}:{n}" for k, n in licenses.items())
            argv = [LICENSED, SERVER, wanted, "--", *argv]
        return self.submit(argv=argv, resources={"licenses": licenses, "labels": labels or {}},
                           **spec)

    def states(self, ids: list[str]) -> list[str]:
        return [self.job(i)["state"] for i in ids]

    def server_state(self, status: str = "up", **features: int) -> None:
        """What the FAKE license server says from now on."""
        folder = self.flexlm / SERVER
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "server.json.tmp"
        tmp.write_text(json.dumps({"status": status, "features": features}))
        tmp.replace(folder / "server.json")

    def refused(self, body: dict[str, Any], route: str = "/api/v1/jobs") -> dict[str, Any]:
        response = self.http.post(route, json=body)
        assert response.status_code == 422, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LicenceFarm]:
    root = tmp_path_factory.mktemp("licences")
    server = RedisServer(root / "redis", appendonly=False)
    server.start()
    flexlm = root / "flexlm"
    settings = Settings.model_validate({
        "redis_url": server.url, "state_dir": root / "state", "gateway_port": free_port(),
        "node_name": "gateway", "heartbeat_s": 0.3, "heartbeat_ttl_s": 3.0,
        "kill_grace_s": 1.0, "licenses": POOLS,
        "license_lmutil": str(FAKES / "flexlm" / "lmutil"), "license_poll_s": 0.3,
        "license_grace_s": 10.0, "license_poll_timeout_s": 10.0, "stats_bucket_s": 1.0})
    gateway = start_gateway(settings, root / "gateway.log", FAKE_FLEXLM_DIR=str(flexlm))
    connection = redis.Redis.from_url(server.url)
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30) as http:
        farm = LicenceFarm(settings, root, http, JobStore(connection), NodeStore(connection),
                           flexlm)
        farm.server_state(anshpc=16, electronics_desktop=4)
        try:
            yield farm
        finally:
            stop_processes([*farm.procs.values(), gateway])
            server.stop()


def hfss_job(root: Path, cores: int, **extra: Any) -> dict[str, Any]:
    project = root / "board.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=2\n$end 'Setup1'\n")
    return {"kind": "hfss", "resources": {"cores": cores}, "hfss": {
        "project_path": str(project), "machine_nodes": [{"hostname": "localhost", "cores": -1}]},
        **extra}


def test_an_hfss_job_asks_for_the_licences_its_cores_check_out(farm: LicenceFarm) -> None:
    job = farm.job(farm.submit(**hfss_job(farm.root, 12)))
    assert job["spec"]["resources"]["licenses"] == {"anshpc": 8, "electronics_desktop": 1}
    packed = farm.job(farm.submit(**hfss_job(farm.root, 12, licensing={"scheme": "pack"})))
    # no anshpc_pack pool on this farm: only the solver licence is counted
    assert packed["spec"]["resources"]["licenses"] == {"electronics_desktop": 1}
    for job_id in (job["id"], packed["id"]):
        assert farm.http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200


def test_more_of_a_pool_than_it_will_ever_have_is_refused_at_submit(farm: LicenceFarm) -> None:
    body = farm.refused({"argv": ["true"], "resources": {"licenses": {"token": 3}}})
    assert body["error"] == "unsatisfiable"
    assert body["fields"] == [{"field": "resources.licenses.token", "reason": (
        "needs 3 token licences but the farm's token pool has 2: it could never start")}]
    # 16 parallel variations of 4 cores: 120 anshpc, the pool has 16
    sweep = farm.refused(hfss_job(farm.root, 64, licensing={"parallel_variations": 16}))
    assert sweep["fields"][0]["field"] == "resources.licenses.anshpc"
    assert f"anshpc pool on {SERVER} has 16" in sweep["fields"][0]["reason"]
    # PyEDB's route computes the same: 24 cores need 20 anshpc
    config = hfss_job(farm.root, 1)["hfss"] | {
        "jobid": "too_many_cores", "machine_nodes": [{"hostname": "localhost", "cores": 24,
                                                      "max_cores": 24}]}
    pyedb = farm.refused({"config": config}, "/jobs/submit")
    assert "needs 20 anshpc licences" in pyedb["error"]
    batch = farm.refused({"jobs": [{"argv": ["true"]},
                                   {"argv": ["true"], "resources": {"licenses": {"token": 9}}}]},
                         "/api/v1/jobs/batch")
    assert batch["fields"][0]["field"] == "jobs.1.resources.licenses.token"


def most_at_once(runs: Path) -> int:
    """The most jobs that ran at the same time, from their recorded starts and ends."""
    events = []
    for line in runs.read_text().splitlines():
        _pid, what, at = line.split()
        events.append((float(at), 1 if what == "start" else -1))
    now = most = 0
    for _, step in sorted(events):
        now += step
        most = max(most, now)
    return most


def test_a_pool_of_two_never_runs_more_than_two_of_four_jobs(
        farm: LicenceFarm, tmp_path: Path) -> None:
    farm.start("w1", node_cores=8, worker_concurrency=4)
    ids = [farm.hold_job(tmp_path, {"token": 1}) for _ in range(4)]
    wait_for(lambda: farm.states(ids), lambda s: s.count("running") == 2, 30, "two to run")
    pool = wait_for(farm.pools, lambda p: p["token"]["waiting"] == 2, 10, "two waiting")["token"]
    assert (pool["limit"], pool["held"], pool["free"]) == (2, 2, 0)
    assert pool["source"] == "configured" and pool["poll_status"] == "no server"
    head, behind = [farm.job(i)["reason"] for i in ids if farm.job(i)["state"] == "pending"]
    assert head.startswith("waiting for 1 token (0 free of 2)"), head
    assert behind.startswith("waiting behind job"), behind  # the same request: in line
    runs = tmp_path / "runs.txt"
    wait_for(lambda: runs.read_text() if runs.exists() else "", lambda t: t.count("start") == 2,
             10, "both to be under way")  # "running" comes a moment before the process
    (tmp_path / "release").touch()
    for job_id in ids:
        farm.wait_state(job_id, "completed")
    assert most_at_once(tmp_path / "runs.txt") == 2
    assert farm.pools()["token"]["held"] == 0
    assert all(farm.job(i)["licenses_held"] is None for i in ids)


def test_licences_in_use_outside_the_farm_start_fewer_until_they_come_back(
        farm: LicenceFarm, tmp_path: Path) -> None:
    alice = farm.outside("alice", "anshpc", 10)
    pool = wait_for(farm.pools, lambda p: p["anshpc"]["outside"] == 10, 15,
                    "the poll to see alice's checkout")["anshpc"]
    assert (pool["limit"], pool["issued"], pool["in_use"]) == (6, 16, 10)
    assert pool["checkouts"] == [{"user": "alice", "host": "ws12", "licenses": 10}]
    ids = [farm.hold_job(tmp_path, {"anshpc": 4}, licensed=True) for _ in range(3)]
    wait_for(lambda: farm.states(ids), lambda s: s.count("running") == 1, 30, "one to run")
    head = wait_for(lambda: [farm.job(i)["reason"] or "" for i in ids],
                    lambda rs: any("outside" in r for r in rs), 15, "the reason")
    assert any(r.startswith(f"waiting for 4 anshpc (2 free; 10 in use outside the farm on "
                            f"{SERVER})") for r in head), head
    alice.unlink()  # alice is done: the next poll gives the farm the whole pool again
    wait_for(lambda: farm.states(ids), lambda s: s.count("running") == 3, 30, "all three")
    # (a poll that counted the farm's running jobs just before the last two checked out
    # takes theirs for outside use, for that one poll: the safe side)
    pool = wait_for(farm.pools, lambda p: p["anshpc"]["in_use"] == 12
                    and p["anshpc"]["outside"] == 0, 15, "checkouts")["anshpc"]
    assert (pool["outside"], pool["held"], pool["limit"]) == (0, 12, 16)
    (tmp_path / "release").touch()
    assert [farm.wait_state(i, "completed")["exit_code"] for i in ids] == [0, 0, 0]


def test_a_server_that_stops_answering_keeps_its_figures_then_falls_back(
        farm: LicenceFarm, tmp_path: Path) -> None:
    farm.outside("bob", "anshpc", 12, user="bob", host="ws07")
    wait_for(farm.pools, lambda p: p["anshpc"]["limit"] == 4, 15, "bob's checkout counted")
    farm.server_state("down", anshpc=16, electronics_desktop=4)
    stale = wait_for(farm.pools, lambda p: p["anshpc"]["source"] == "last-good", 15,
                     "the poll to fail")["anshpc"]
    assert stale["limit"] == 4 and "Cannot connect to license server" in stale["warning"]
    assert "the anshpc pool keeps the figures of" in stale["warning"]
    fallback = wait_for(farm.pools, lambda p: p["anshpc"]["source"] == "fallback", 30,
                        "the grace period to end")["anshpc"]
    assert fallback["limit"] == 16 and fallback["warning"].endswith(
        "the anshpc pool falls back to its configured count 16")
    farm.server_state("garbage", anshpc=16, electronics_desktop=4)
    job = farm.submit(argv=["true"])  # the dispatcher goes on placing jobs meanwhile
    assert farm.wait_state(job, "completed")["exit_code"] == 0
    farm.server_state(electronics_desktop=4)  # up again, but without anshpc
    missing = wait_for(farm.pools, lambda p: "not served" in (p["anshpc"]["warning"] or ""),
                       15, "the missing feature")["anshpc"]
    assert missing["source"] == "fallback"
    (farm.flexlm / SERVER / "checkouts" / "bob.json").unlink()
    farm.server_state(anshpc=16, electronics_desktop=4)
    back = wait_for(farm.pools, lambda p: p["anshpc"]["source"] == "server", 15, "recovery")
    assert back["anshpc"]["warning"] is None and back["anshpc"]["limit"] == 16
    assert "falls back to its configured count" in farm.log("w1")


def test_a_worker_killed_mid_job_gives_its_licences_back(
        farm: LicenceFarm, tmp_path: Path) -> None:
    farm.start("victim", node_cores=2, worker_concurrency=2, node_labels={"kill": "me"})
    first = farm.hold_job(tmp_path, {"token": 2}, labels={"kill": "me"})
    assert farm.wait_state(first, "running")["node"] == "victim"
    second = farm.hold_job(tmp_path / "second", {"token": 1})
    (tmp_path / "second").mkdir()
    assert farm.job(second)["state"] == "pending"
    assert farm.job(first)["licenses_held"] == {"token": 2}
    os.kill(farm.procs["victim"].pid, signal.SIGKILL)
    lost = farm.wait_state(first, "failed", timeout_s=40)
    assert lost["error"] == "worker lost" and lost["licenses_held"] is None
    assert farm.wait_state(second, "running", timeout_s=30)["node"] == "w1"
    assert farm.pools()["token"]["held"] == 1
    (tmp_path / "second" / "release").touch()
    farm.wait_state(second, "completed")


def test_the_reconciler_repairs_a_drifted_count_and_says_so(farm: LicenceFarm) -> None:
    if not farm.procs:  # run on its own: the module's earlier tests start the workers
        farm.start("w1", node_cores=8, worker_concurrency=4)
    keys = farm.jobs.keys
    farm.jobs.connection.hset(keys.licenses_held, "token", 7)  # no job holds any
    wait_for(farm.pools, lambda p: p["token"]["held"] == 0, 30, "the repair")
    leader = wait_for(lambda: [n for n in farm.procs if "recorded as held 7" in farm.log(n)],
                      bool, 10, "the warning")
    assert "repaired" in farm.log(leader[0])


def test_simfarm_licenses_lists_the_pools_and_warns(farm: LicenceFarm) -> None:
    from tests.test_cli import simfarm_argv

    carol = farm.outside("carol", "anshpc", 4, user="carol", host="ws03")
    wait_for(farm.pools, lambda p: p["anshpc"]["outside"] == 4, 15, "carol's checkout")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update(SIMFARM_URL=str(farm.http.base_url).rstrip("/"), PYTHONPATH=str(FAKES.parent.parent))
    shown = subprocess.run([*simfarm_argv(), "licenses"], env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    header, *rows = [line.split("\t") for line in shown.stdout.splitlines()]
    assert header == ["POOL", "FREE", "HELD", "OUTSIDE", "LIMIT", "WAITING", "SOURCE", "SERVER"]
    anshpc = next(r for r in rows if r[0] == "anshpc")
    assert anshpc[1:7] == ["12/16", "0", "4", "12", "0", "server"]
    assert anshpc[7].startswith(f"{SERVER} ") and anshpc[7].endswith(" ago")
    token = next(r for r in rows if r[0] == "token")
    assert token[1:] == ["2/2", "0", "0", "2", "0", "configured", "-"]
    as_json = subprocess.run([*simfarm_argv(), "licenses", "--json"], env=env,
                             capture_output=True, text=True, timeout=60, check=True)
    pools = {p["name"]: p for p in json.loads(as_json.stdout)}
    assert pools["anshpc"]["checkouts"] == [{"user": "carol", "host": "ws03", "licenses": 4}]
    carol.unlink()
    farm.server_state("down", anshpc=16, electronics_desktop=4)
    wait_for(farm.pools, lambda p: p["anshpc"]["source"] in ("last-good", "fallback"), 30,
             "the failure")
    warned = subprocess.run([*simfarm_argv(), "licenses"], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert f"warning: anshpc: {SERVER}: server down: Cannot connect" in warned.stderr
    farm.server_state(anshpc=16, electronics_desktop=4)


def test_the_pools_are_on_the_dashboard_in_prometheus_and_over_time(
        farm: LicenceFarm, tmp_path: Path) -> None:
    job = farm.hold_job(tmp_path, {"token": 1})
    farm.wait_state(job, "running")
    metrics = farm.http.get("/metrics").text
    for line in ('simfarm_license_held{pool="token"} 1.0', 'simfarm_license_free{pool="token"} 1.0',
                 'simfarm_license_count{pool="anshpc"} 16.0',
                 'simfarm_license_fallback{pool="token"} 0.0'):
        assert line in metrics, line
    page = farm.http.get("/ui/overview").text
    assert '<tr data-pool="token">' in page and 'id="chart-licences"' in page
    assert '<tr data-pool="anshpc">' in page and SERVER in page

    def series() -> dict[str, Any]:
        body = farm.http.get("/api/v1/stats/series", params={
            "metric": "licenses_in_use", "since": -60}).json()
        return {s["labels"]["feature"]: s for s in body["series"]}

    token = wait_for(series, lambda s: "token" in s and any(v == 1.0 for _, v in
                                                            s["token"]["points"]),
                     20, "a sample with the job's licence")["token"]
    assert token["current"][1] == 1.0 and token["unit"] == "licences"
    (tmp_path / "release").touch()
    farm.wait_state(job, "completed")

"""Faults with real processes: Redis restarted (kill -9, AOF on), the workers' Redis
connection dropped for 10 s and for a moment while staged projects move, the gateway
restarted under waiting clients and WebSockets, and a full disk under the state folder.
(kill -9 of a worker mid-job is covered by tests/test_farm_scheduling.py.)

For each: no accepted job is lost, no job runs twice at once (every run of a job writes
start/tick/end lines with timestamps; runs of one job must not overlap), every job ends
in a truthful state, and clients carry on from their last event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.client import Client
from simfarm.common.models import JobEvent, NodeInfo
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from tests.chaos import RECORDER, SmallDisk, TcpProxy, assert_never_twice_at_once, runs_of
from tests.conftest import RedisServer
from tests.helpers import (
    FAKES,
    free_port,
    start_gateway,
    start_worker,
    stop_processes,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)
PY = sys.executable
#: Like RECORDER, but the run ends when the file ``sys.argv[2]`` appears.
GATED = (
    "import os, sys, time\n"
    "log = open(os.path.join(sys.argv[1], os.environ['SIMFARM_JOB_ID']), 'a', buffering=1)\n"
    "pid = os.getpid()\n"
    "log.write(f'{pid} start {time.time()}\\n')\n"
    "while not os.path.exists(sys.argv[2]):\n"
    "    time.sleep(0.05)\n"
    "    log.write(f'{pid} tick {time.time()}\\n')\n"
    "log.write(f'{pid} end {time.time()}\\n')\n"
)


@dataclass
class FaultFarm:
    """A private farm: Redis (AOF, fsync always), the gateway on Redis directly, two
    workers reaching Redis through a proxy that can cut them off, and the gateway (for
    staged files) through one that can slow them down."""

    root: Path
    server: RedisServer
    proxy: TcpProxy
    link: TcpProxy
    settings: Settings
    http: httpx.Client
    store: JobStore
    records: Path
    gateway: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    def start_gateway(self) -> None:
        self.gateway = start_gateway(self.settings, self.root / "gateway.log")

    def submit(self, seconds: float, **extra: Any) -> str:
        spec = {"argv": [PY, "-c", RECORDER, str(self.records), str(seconds)],
                "resources": {"labels": {"pool": "fault"}}, **extra}
        response = self.http.post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def states(self, ids: list[str]) -> list[str]:
        return [j.state.value for j in self.store.get_many(ids)]

    def wait_final(self, ids: list[str], timeout_s: float = 60) -> list[str]:
        return wait_for(lambda: self.states(ids),
                        lambda s: len(s) == len(ids) and all(
                            x in ("completed", "failed", "cancelled") for x in s),
                        timeout_s, f"{len(ids)} jobs to end")


@pytest.fixture(scope="module")
def ff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultFarm]:
    root = tmp_path_factory.mktemp("faults")
    server = RedisServer(root / "redis", extra_args=("--appendfsync", "always"))
    server.start()
    proxy = TcpProxy(server.port)
    settings = Settings(redis_url=server.url, state_dir=root / "state",
                        gateway_port=free_port(), node_name="fault-gateway",
                        heartbeat_s=0.3, heartbeat_ttl_s=3.0, kill_grace_s=1.0)
    link = TcpProxy(settings.gateway_port)
    connection = redis.Redis.from_url(server.url)
    records = root / "records"
    records.mkdir()
    farm = FaultFarm(root, server, proxy, link, settings, httpx.Client(timeout=30),
                     JobStore(connection), records)
    farm.start_gateway()
    farm.http.base_url = httpx.URL(farm.url)
    nodes = NodeStore(connection)
    try:
        for name in ("fa", "fb"):
            node = settings.model_copy(update={
                "node_name": name, "redis_url": proxy.url, "node_cores": 4,
                "worker_concurrency": 2, "node_labels": {"pool": "fault"},
                "worker_gateway_url": f"http://127.0.0.1:{link.port}"})
            farm.workers[name] = start_worker(node, root / f"{name}.log",
                                              ANSYSEM_ROOT252=str(FAKES))  # FAKE ansysedt
        for name in farm.workers:
            wait_for(lambda n=name: nodes.is_alive(n), bool, 60, f"worker {name}")
        yield farm
    finally:
        stop_processes([*farm.workers.values(), farm.gateway])
        farm.http.close()
        proxy.close()
        link.close()
        server.stop()


# ---------------------------------------------------------------- Redis restart


def _ghost(nodes: NodeStore, stop: threading.Event) -> None:
    """A registered node with room but no worker: jobs sent there stay scheduled."""
    info = NodeInfo(name="ghost", hostname="ghost", queue="simfarm.node.ghost",
                    cores_total=1, cores_free=1, memory_mb_total=1024, memory_mb_free=1024,
                    max_jobs=1, labels={"pool": "fault"})
    while not stop.wait(0.3):
        try:
            nodes.heartbeat(info, 2.0)
        except redis.RedisError:
            pass


def test_redis_killed_and_restarted_with_jobs_pending_scheduled_and_running(
    ff: FaultFarm,
) -> None:
    nodes = NodeStore(redis.Redis.from_url(ff.server.url))
    stop_ghost = threading.Event()
    ghost = threading.Thread(target=_ghost, args=(nodes, stop_ghost), daemon=True)
    ghost.start()
    wait_for(lambda: nodes.is_alive("ghost"), bool, 10, "the ghost node")
    scheduled = ff.submit(0.3, resources={"cores": 1, "labels": {"pool": "fault"}})
    wait_for(lambda: ff.store.get(scheduled), lambda j: j.state.value == "scheduled"
             and j.node == "ghost", 10, "a job scheduled on the ghost node")
    running = [ff.submit(3.0) for _ in range(4)]
    wait_for(lambda: ff.states(running), lambda s: s == ["running"] * 4, 20, "4 running")
    pending = [ff.submit(0.3) for _ in range(6)]
    assert set(ff.states(pending)) == {"pending"}

    ff.server.stop(kill=True)  # crash: no shutdown, no final AOF flush
    down = ff.http.post("/api/v1/jobs", json={"argv": ["true"]})
    assert down.status_code == 503 and down.json()["error"] == "unavailable", down.text
    assert "Retry-After" in down.headers
    time.sleep(1.0)  # the fault itself (Redis down for a second), not a wait
    ff.server.start()
    stop_ghost.set()  # the ghost never comes back: its scheduled job must move on

    accepted = [scheduled, *running, *pending]
    ff.wait_final(accepted, 60)
    jobs = ff.store.get_many(accepted)
    assert [j.state.value for j in jobs] == ["completed"] * len(accepted), [
        (j.id, j.state.value, j.reason) for j in jobs]
    runs = assert_never_twice_at_once(ff.records, accepted)
    assert all(sum(r.ended for r in runs[i]) == 1 for i in accepted)
    assert ff.store.get(scheduled).node in ("fa", "fb")


# ---------------------------------------------------------------- 10 s network drop


def test_workers_cut_off_from_redis_for_10_s(ff: FaultFarm) -> None:
    long_jobs = [ff.submit(5.0, retries=1) for _ in range(2)]
    short_jobs = [ff.submit(1.5) for _ in range(2)]
    every = long_jobs + short_jobs
    wait_for(lambda: ff.states(every), lambda s: s == ["running"] * 4, 20, "4 running")
    with ff.proxy.outage(10.0):
        during = [ff.submit(0.3) for _ in range(3)]  # the gateway still takes jobs
        assert ff.http.get("/api/v1/health").status_code == 200
    ff.wait_final(every + during, 60)
    jobs = {j.id: j for j in ff.store.get_many(every + during)}
    assert {j.state.value for j in jobs.values()} == {"completed"}, [
        (j.id, j.state.value, j.reason) for j in jobs.values()]
    runs = assert_never_twice_at_once(ff.records, every + during)
    for job_id in long_jobs:  # their leases ran out: stopped there, run again elsewhere
        assert len(runs[job_id]) == 2 and not runs[job_id][0].ended
        assert jobs[job_id].attempt == 2
    for job_id in short_jobs:  # finished during the outage; recorded once back
        assert len(runs[job_id]) == 1 and runs[job_id][0].ended


# ---------------------------------------------------------------- drop while staging


def test_redis_outage_while_staged_projects_move_is_ridden_out_like_one_during_a_run(
    ff: FaultFarm, tmp_path: Path
) -> None:
    """One job is downloading its project over a slow link, another ends its run and
    sends its results back, when the workers lose Redis for less than a lease: both
    carry on (no 'internal error', no second attempt), as running jobs do."""
    client = Client(url=ff.url, timeout=30)
    big = tmp_path / "big.aedb"
    big.mkdir()
    (big / "mesh.bin").write_bytes(os.urandom(6 * 2**20))
    small = tmp_path / "small.aedb"
    small.mkdir()
    (small / "edb.def").write_bytes(b"edb")
    go = tmp_path / "go"
    try:
        fetch_files = client.upload_project(big).model_dump()
        sending = ff.submit(0, argv=[PY, "-c", GATED, str(ff.records), str(go)],
                            files=client.upload_project(small).model_dump())
        wait_for(lambda: runs_of(ff.records, sending), bool, 20, "the small job's run")
        ff.link.rate_bytes_s = 2 * 2**20  # the big project takes about 3 s to come in
        fetching = ff.submit(0.3, files=fetch_files)
        wait_for(lambda: [e.data.get("message") for e in ff.store.events(fetching)],
                 lambda m: "downloading project archive" in m, 20, "the download to start")
        with ff.proxy.outage(1.5):  # shorter than the lease (3 s)
            go.touch()  # the small job ends now: its results go back while Redis is away
            wait_for(lambda: runs_of(ff.records, sending), lambda r: r[0].ended, 1,
                     "the small job's run to end")
        restored = time.time()
        ff.wait_final([sending, fetching], 60)
        jobs = {j.id: j for j in ff.store.get_many([sending, fetching])}
        assert [(j.state.value, j.attempt) for j in jobs.values()] == [("completed", 1)] * 2, [
            (j.id, j.state.value, j.reason) for j in jobs.values()]
        runs = assert_never_twice_at_once(ff.records, [sending, fetching])
        assert all(len(r) == 1 and r[0].ended for r in runs.values())
        assert runs[fetching][0].start > restored  # its download went on through the outage
        results = jobs[sending].results
        assert results is not None and not results.partial
        output = (client.download(sending, tmp_path / "results") / "simfarm-output.log")
        assert "Redis could not be reached" in output.read_text()  # said, not made up
    finally:
        ff.link.rate_bytes_s = None
        client.close()


def test_redis_outage_during_an_hfss_solve_is_ridden_out(ff: FaultFarm, tmp_path: Path) -> None:
    """The solve goes on through a short outage; its progress, which cannot be written
    meanwhile, is caught up, and the job completes as its first attempt."""
    project = tmp_path / "board.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=8\n$end 'Setup1'\n")
    response = ff.http.post("/api/v1/jobs", json={
        "kind": "hfss", "resources": {"labels": {"pool": "fault"}},
        "hfss": {"project_path": str(project), "design_name": "main", "setup_name": "Setup1"},
        "env": {"FAKE_ANSYSEDT_PASSES": "6", "FAKE_ANSYSEDT_SECONDS": "4"}})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    wait_for(lambda: ff.store.get(job_id), lambda j: j.progress is not None
             and (j.progress.get("adaptive_pass") or 0) >= 1, 30, "the solve's first pass")
    with ff.proxy.outage(1.5):  # shorter than the lease (3 s); passes go by meanwhile
        pass
    ff.wait_final([job_id], 60)
    job = ff.store.get(job_id)
    assert (job.state.value, job.attempt, job.exit_code) == ("completed", 1, 0), job.reason
    assert job.progress is not None and job.progress["phase"] == "done"
    assert job.progress["adaptive_pass"] == 6


# ---------------------------------------------------------------- gateway restart


def test_gateway_restart_under_waiting_clients_and_websockets(ff: FaultFarm) -> None:
    ids = [ff.submit(2.0) for _ in range(3)]
    client = Client(url=ff.url, timeout=10)
    waited: dict[str, Any] = {}
    streamed: list[JobEvent] = []
    since = ff.store.last_event_id()

    def wait() -> None:
        waited["jobs"] = client.wait_all(ids, timeout=60)

    def follow() -> None:
        for event in Client(url=ff.url, timeout=10).stream(jobs=ids, since=since):
            streamed.append(event)
            if sum(1 for e in streamed if e.type == "state" and
                   e.data.get("to") == "completed") == len(ids):
                return

    threads = [threading.Thread(target=t, daemon=True) for t in (wait, follow)]
    for thread in threads:
        thread.start()
    wait_for(lambda: ff.states(ids), lambda s: "running" in s, 20, "a job to run")
    assert ff.gateway is not None
    ff.gateway.send_signal(signal.SIGKILL)
    ff.gateway.wait(timeout=10)
    time.sleep(1.5)  # the fault itself (gateway down), not a wait
    ff.start_gateway()
    for thread in threads:
        thread.join(timeout=60)
    assert [j.state.value for j in waited["jobs"]] == ["completed"] * 3
    stored = [e for e in ff.store.global_events(since=since, count=100_000) if e.job_id in ids]
    assert [e.id for e in streamed] == [e.id for e in stored]  # nothing lost or repeated


# ---------------------------------------------------------------- full disk


def test_full_disk_under_the_state_folder(tmp_path: Path) -> None:
    disk = SmallDisk(tmp_path / "state", size_mb=32)
    if not disk.mounted:
        pytest.skip("needs root to mount a small tmpfs for the state folder")
    procs: list[subprocess.Popen[bytes]] = []
    done = threading.Event()
    server = RedisServer(disk.path / "redis")
    try:
        server.start()
        settings = Settings(redis_url=server.url, state_dir=disk.path, gateway_port=free_port(),
                            node_name="disk-node", heartbeat_s=0.3, heartbeat_ttl_s=3.0,
                            kill_grace_s=1.0, worker_concurrency=2)
        procs.append(start_gateway(settings, tmp_path / "gateway.log"))
        procs.append(start_worker(settings, tmp_path / "worker.log"))
        exits: list[int] = []

        def supervise() -> None:  # what systemd's Restart=on-failure does for the worker
            while not done.is_set():
                code = procs[1].poll()
                if code is not None and code != 0:
                    exits.append(code)
                    procs[1] = start_worker(settings, tmp_path / "worker.log")
                done.wait(0.2)

        threading.Thread(target=supervise, daemon=True).start()
        store = JobStore(redis.Redis.from_url(server.url))
        http = httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30)
        wait_for(lambda: http.get("/api/v1/health").json().get("nodes_alive"), bool, 60,
                 "the worker")
        # 100 kB each: more than the disk has left while full, yet the jobs accepted before
        # it filled (30 or more) must not fill it again once freed (32 MiB)
        writer = ["sh", "-c", "head -c 100000 /dev/zero > out.bin && echo wrote"]
        disk.fill(leave_kb=64)
        answers: list[httpx.Response] = []
        while len(answers) < 1000 and (not answers or answers[-1].status_code == 201):
            answers.append(http.post("/api/v1/jobs", json={"argv": writer}))
        answers += [http.post("/api/v1/jobs", json={"argv": writer}) for _ in range(3)]
        assert all(a.status_code in (201, 503, 507) for a in answers), [
            (a.status_code, a.text) for a in answers]
        refused = [a for a in answers if a.status_code != 201]
        assert refused, "the disk never filled up"
        assert any(a.status_code == 507 and "space" in a.json()["detail"] for a in refused)
        accepted = [str(a.json()["id"]) for a in answers if a.status_code == 201]
        disk.free_up()
        wait_for(lambda: http.post("/api/v1/jobs", json={"argv": ["true"]}).status_code,
                 lambda code: code == 201, 30, "submissions to work again")
        final = wait_for(lambda: store.get_many(accepted), lambda js: len(js) == len(accepted)
                         and all(j.final for j in js), 60, "the accepted jobs to end")
        for job in final:  # ended truthfully: wrote its file, or failed saying why
            assert job.state.value == "completed" or (
                job.state.value == "failed" and job.reason), job
        server.stop()  # a clean restart: every accepted job is on disk
        server.start()
        assert {j.id for j in store.get_many(accepted)} == set(accepted)
        assert all(code == 1 for code in exits)  # a worker that gave up said so
        http.close()
    finally:
        done.set()
        stop_processes(procs)
        server.stop()
        disk.close()


def test_records_parse_kills_mid_line(tmp_path: Path) -> None:
    (tmp_path / "j").write_text("1 start 1.0\n1 tick 1.5\n1 ti\n2 start 2.0\n2 end 3.0\n")
    runs = runs_of(tmp_path, "j")
    assert [(r.pid, r.start, r.last, r.ended) for r in runs] == [
        ("1", 1.0, 1.5, False), ("2", 2.0, 3.0, True)]
    (tmp_path / "k").write_text("1 start 1.0\n2 start 1.2\n1 tick 1.3\n")
    with pytest.raises(AssertionError, match="twice at once"):
        assert_never_twice_at_once(tmp_path, ["k"])

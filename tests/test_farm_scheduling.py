"""Scheduling across a farm of real workers: three worker processes with different node
names, capacities and labels (plus two more started by the lost-worker test), one private
redis-server, the real gateway over HTTP. Every worker process also runs a dispatcher;
one of them leads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from simfarm.common.errors import StaleAttempt
from simfarm.common.models import JobSpec, NodeInfo
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.leader import LeaderLock
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

NODES: dict[str, dict[str, Any]] = {
    "small": {"node_cores": 2, "node_memory_mb": 4096, "worker_concurrency": 2,
              "node_labels": {"tier": "small", "pool": "farm"}},
    "big": {"node_cores": 8, "node_memory_mb": 32_768, "worker_concurrency": 4,
            "node_labels": {"tier": "big", "pool": "farm"}},
    # no configured labels: gpu=a100 comes from (FAKE) nvidia-smi on its PATH
    "gpu": {"node_cores": 4, "node_memory_mb": 8192, "worker_concurrency": 2},
}
ENV = {"gpu": {"PATH": f"{FAKES / 'nvidia'}{os.pathsep}{os.environ['PATH']}"}}
PY = sys.executable
#: a job that records ``<pid> start`` / ``<pid> end`` lines in a file and sleeps
RECORDER = ("import os, sys, time\n"
            "log = open(sys.argv[1], 'a', buffering=1)\n"
            "log.write(f'{os.getpid()} start\\n')\n"
            "time.sleep(float(sys.argv[2]))\n"
            "log.write(f'{os.getpid()} end\\n')\n")


#: waits for the file ``argv[1]``, writes ``ended`` beside it (counting runs), exits argv[2]
GATED_EXIT = ("import os, sys, time\n"
              "while not os.path.exists(sys.argv[1]):\n"
              "    time.sleep(0.02)\n"
              "marker = os.path.join(os.path.dirname(sys.argv[1]), 'ended')\n"
              "runs = int(open(marker).read()) if os.path.exists(marker) else 0\n"
              "open(marker, 'w').write(str(runs + 1))\n"
              "sys.exit(int(sys.argv[2]))\n")


@dataclass
class Farm(FarmApi):
    """The running farm and how to reach and disturb it."""

    settings: Settings
    root: Path
    http: httpx.Client
    nodes: NodeStore
    jobs: JobStore
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, **overrides: Any) -> None:
        node = self.settings.model_copy(update={"node_name": name, **overrides})
        self.procs[name] = start_worker(node, self.root / f"{name}.log", **ENV.get(name, {}))
        wait_for(lambda: self.nodes.is_alive(name), bool, 60, f"worker {name} to register")

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("farm")
    server = RedisServer(root / "redis", appendonly=False)
    server.start()
    settings = Settings(redis_url=server.url, state_dir=root / "state", gateway_port=free_port(),
                        node_name="gateway", heartbeat_s=0.3, heartbeat_ttl_s=3.0,
                        kill_grace_s=1.0)
    gateway = start_gateway(settings, root / "gateway.log")
    connection = redis.Redis.from_url(server.url)
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30) as http:
        farm = Farm(settings, root, http, NodeStore(connection), JobStore(connection))
        try:
            for name, overrides in NODES.items():
                farm.start(name, **overrides)
            yield farm
        finally:
            stop_processes([*farm.procs.values(), gateway])
            server.stop()


def started(job: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(job["started_at"])


def test_routes_by_cores_memory_and_labels(farm: Farm) -> None:
    wide = farm.submit(argv=["true"], resources={"cores": 6})
    fat = farm.submit(argv=["true"], resources={"memory_mb": 16_000})
    cuda = farm.submit(argv=["true"], resources={"labels": {"gpu": "a100"}})
    tiny = farm.submit(argv=["true"], resources={"labels": {"tier": "small"}})
    where = {j: farm.wait_state(j, "completed")["node"] for j in (wide, fat, cuda, tiny)}
    assert where == {wide: "big", fat: "big", cuda: "gpu", tiny: "small"}


def test_job_no_registered_node_fits_is_a_422_naming_the_closest_miss(farm: Farm) -> None:
    response = farm.http.post("/api/v1/jobs", json={"argv": ["true"],
                                                   "resources": {"cores": 16}})
    assert response.status_code == 422
    assert "16 cores (node has 8)" in response.json()["detail"]
    response = farm.http.post("/api/v1/jobs", json={"argv": ["true"],
                                                   "resources": {"labels": {"gpu": "h100"}}})
    assert response.status_code == 422 and "gpu=h100" in response.json()["detail"]


def test_workers_api_and_cli_show_free_resources_and_jobs(farm: Farm) -> None:
    job_id = farm.submit(argv=[PY, "-c", "import time; time.sleep(1.5)"],
                         resources={"cores": 3, "labels": {"gpu": "a100"}})
    farm.wait_state(job_id, "running")
    gpu = farm.worker("gpu")
    assert gpu["alive"] and gpu["status"] == "ready" and job_id in gpu["jobs"]
    assert gpu["labels"]["gpu"] == "a100" and gpu["labels"]["gpus"] == "1"  # from nvidia-smi
    assert gpu["cores_total"] == 4 and gpu["cores_free"] == 1
    out = subprocess.run(
        [PY, "-m", "simfarm.client.cli", "workers", "--url", str(farm.http.base_url)],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    ).stdout
    assert "gpu" in out and "small" in out and "big" in out
    farm.wait_state(job_id, "completed")


def test_priority_order_and_priority_change_while_pending(farm: Farm) -> None:
    small = {"cores": 2, "labels": {"tier": "small"}}
    blocker = farm.submit(argv=[PY, "-c", "import time; time.sleep(1.5)"], resources=small)
    farm.wait_state(blocker, "running")
    low = farm.submit(argv=["true"], priority=1, resources=small)
    high = farm.submit(argv=["true"], priority=9, resources=small)
    bumped = farm.submit(argv=["true"], priority=1, resources=small)
    response = farm.http.patch(f"/api/v1/jobs/{bumped}", json={"priority": 5})
    assert response.status_code == 200 and response.json()["priority"] == 5
    jobs = {j: farm.wait_state(j, "completed") for j in (low, high, bumped)}
    assert started(jobs[high]) < started(jobs[bumped]) < started(jobs[low])
    assert farm.http.patch(f"/api/v1/jobs/{low}", json={"priority": 3}).status_code == 409
    assert farm.http.patch(f"/api/v1/jobs/{low}", json={"priority": 11}).status_code == 422


def test_backfill_runs_short_jobs_but_never_delays_the_reserved_one(farm: Farm) -> None:
    small = {"labels": {"tier": "small"}}
    # 1 of 'small's 2 cores busy for 2 s, under a 20 s time limit: a 2-core job must wait.
    blocker = farm.submit(argv=[PY, "-c", "import time; time.sleep(2)"], timeout_s=20,
                          resources={"cores": 1, **small})
    farm.wait_state(blocker, "running")
    wide = farm.submit(argv=["true"], priority=9, timeout_s=30, resources={"cores": 2, **small})
    short = farm.submit(argv=["true"], priority=1, timeout_s=10, resources={"cores": 1, **small})
    long = farm.submit(argv=["true"], priority=1, timeout_s=60, resources={"cores": 1, **small})
    # the short job fits before the reservation: it starts while the wide job waits
    assert farm.wait_state(short, "completed")["node"] == "small"
    assert farm.job(wide)["state"] == "pending"
    reason = wait_for(lambda: farm.job(long), lambda j: "reserved" in (j["reason"] or ""),
                      10, "the long job's reason")["reason"]
    assert f"reserved for job {wide}, ahead in line" in reason
    assert "reserved on small" in farm.job(wide)["reason"]
    done = {j: farm.wait_state(j, "completed") for j in (wide, long)}
    assert started(farm.job(short)) < started(done[wide]) <= started(done[long])


def test_local_limit_holds_the_node_until_released(farm: Farm) -> None:
    url = "/api/v1/workers/gpu/limits"
    assert farm.http.get("/api/v1/workers/nope/limits").status_code == 404
    assert farm.http.patch(url, json={"max_cpu_percent": 150}).status_code == 422
    changed = farm.http.patch(url, json={"max_memory_percent": 1}).json()
    assert changed["max_memory_percent"] == 1
    held = wait_for(lambda: farm.worker("gpu"), lambda w: w["status"] == "held", 10,
                    "the gpu node to be held")
    assert "memory" in held["held_reason"] and "> max 1%" in held["held_reason"]
    job_id = farm.submit(argv=["true"], resources={"labels": {"gpu": "a100"}})
    reason = wait_for(lambda: farm.job(job_id), lambda j: "held" in (j["reason"] or ""), 10,
                      "the job's reason")["reason"]
    assert "local limits" in reason and "gpu" in reason
    assert farm.job(job_id)["state"] == "pending"
    assert farm.http.patch(url, json={"max_memory_percent": None}).status_code == 200
    assert farm.wait_state(job_id, "completed")["node"] == "gpu"
    assert farm.http.get(url).json()["max_memory_percent"] is None
    # max_jobs = 0 is a hold too; PUT replaces every limit
    assert farm.http.put(url, json={"max_jobs": 0}).json()["max_jobs"] == 0
    wait_for(lambda: farm.worker("gpu"), lambda w: w["held_reason"] == "max_jobs is 0", 10,
             "max_jobs hold")
    cleared = farm.http.put(url, json={}).json()
    assert "max_jobs" in cleared and set(cleared.values()) == {None}
    wait_for(lambda: farm.worker("gpu"), lambda w: w["status"] == "ready", 10, "release")


def test_kill_9_of_a_worker_mid_job_requeues_it_and_it_finishes_elsewhere(
    farm: Farm, tmp_path: Path
) -> None:
    rescue = {"labels": {"rescue": "yes"}}
    farm.start("victim", node_cores=2, worker_concurrency=2, node_labels={"rescue": "yes"})
    record = tmp_path / "runs.txt"
    # long enough to outlast the rescuer's start on a loaded machine (about 4 s here)
    retried = farm.submit(argv=[PY, "-c", RECORDER, str(record), "8"], retries=1, **{
        "resources": {"cores": 1, **rescue}})
    lost = farm.submit(argv=[PY, "-c", "import time; time.sleep(30)"], retries=0,
                       resources={"cores": 1, **rescue})
    for job_id in (retried, lost):
        assert farm.wait_state(job_id, "running")["node"] == "victim"
    # The job is "running" as soon as its process starts; the file comes a moment later.
    first_pid = int(wait_for(lambda: record.read_text() if record.exists() else "",
                             lambda t: "start" in t, 10, "the first run").split()[0])
    farm.start("rescuer", node_cores=2, worker_concurrency=2, node_labels={"rescue": "yes"})
    os.kill(farm.procs["victim"].pid, signal.SIGKILL)
    # the orphan guard kills the first run before the node is even declared lost
    wait_for(lambda: psutil.pid_exists(first_pid) and
             psutil.Process(first_pid).status() != psutil.STATUS_ZOMBIE,
             lambda alive: not alive, 5, "the orphaned solver to be killed")
    assert farm.job(retried)["state"] == "running"  # not re-queued yet: never twice at once
    failed = farm.wait_state(lost, "failed", timeout_s=30)
    assert failed["error"] == "worker lost" and "victim" in failed["reason"]
    done = farm.wait_state(retried, "completed", timeout_s=40)
    assert done["node"] == "rescuer" and done["attempt"] == 2
    runs = record.read_text().split("\n")
    assert runs[0] == f"{first_pid} start" and f"{first_pid} end" not in runs
    assert runs[1].endswith("start") and runs[2] == runs[1].replace("start", "end")
    victim = farm.worker("victim")
    assert not victim["alive"] and victim["status"] == "lost"


def wait_started(worker: psutil.Process, marker: Path) -> None:
    """Wait until the job's own program (the interpreter, its argv naming ``marker``) runs
    under ``worker``: a job is ``running`` from its claim, a moment before its program
    starts, and a worker killed in that moment has started nothing."""
    def started() -> bool:
        for process in worker.children(recursive=True):
            try:
                argv = process.cmdline()
            except psutil.NoSuchProcess:
                continue
            if argv and argv[0] == PY and str(marker) in argv:
                return True
        return False

    wait_for(started, bool, 10, "the job's program to start")


def test_job_that_ends_after_its_worker_died_is_recorded_as_it_ended_not_run_again(
    farm: Farm, tmp_path: Path
) -> None:
    farm.start("brief", node_cores=1, worker_concurrency=1, node_labels={"brief": "yes"})
    gate = tmp_path / "go"
    done_ok = farm.submit(argv=[PY, "-c", GATED_EXIT, str(gate), "0"], retries=3,
                          resources={"labels": {"brief": "yes"}})
    assert farm.wait_state(done_ok, "running")["node"] == "brief"
    worker = psutil.Process(farm.procs["brief"].pid)
    wait_started(worker, gate)
    guard = next(p for p in worker.children() if "simfarm.workers.orphan_guard" in p.cmdline())
    # The guard paused, the worker killed, then the job's program ends by itself: when the
    # guard goes on it finds the worker gone and the program's exit status in its note.
    guard.suspend()
    try:
        os.kill(worker.pid, signal.SIGKILL)
        farm.procs["brief"].wait(timeout=10)
        gate.touch()
        wait_for(lambda: (tmp_path / "ended").exists(), bool, 10, "the program to end")
    finally:
        guard.resume()
    job = farm.wait_state(done_ok, "completed", "failed", timeout_s=20)
    assert (job["state"], job["exit_code"], job["attempt"]) == ("completed", 0, 1), job
    state_events = [e for e in farm.jobs.events(done_ok) if e.type == "state"]
    assert state_events[-1].data["recorded_by"] == "orphan guard of brief"
    assert (tmp_path / "ended").read_text() == "1"  # it ran once, to its end


def test_job_ending_just_after_its_worker_died_is_let_finish_not_stopped_and_run_again(
    farm: Farm, tmp_path: Path
) -> None:
    """The worker dies while its job writes its last results: the orphan guard gives the
    program ``orphan_finish_s`` to end by itself before it stops it, and records the
    outcome; stopped in its last moments, it would have run again."""
    farm.start("finishing", node_cores=1, worker_concurrency=1, orphan_finish_s=30.0,
               node_labels={"finishing": "yes"})
    gate = tmp_path / "go"
    job_id = farm.submit(argv=[PY, "-c", GATED_EXIT, str(gate), "0"], retries=3,
                         resources={"labels": {"finishing": "yes"}})
    assert farm.wait_state(job_id, "running")["node"] == "finishing"
    wait_started(psutil.Process(farm.procs["finishing"].pid), gate)
    os.kill(farm.procs["finishing"].pid, signal.SIGKILL)
    farm.procs["finishing"].wait(timeout=10)
    guard_logs = farm.settings.state_dir / "orphan-guard"
    wait_for(lambda: "get 30.0 s to end by themselves" in "".join(
        f.read_text(errors="replace") for f in guard_logs.glob("finishing-*.log")),
        bool, 20, "the guard to wait for the program")
    gate.touch()  # the program ends now, by itself
    job = farm.wait_state(job_id, "completed", "failed", timeout_s=30)
    assert (job["state"], job["exit_code"], job["attempt"]) == ("completed", 0, 1), job
    state_events = [e for e in farm.jobs.events(job_id) if e.type == "state"]
    assert state_events[-1].data["recorded_by"] == "orphan guard of finishing"
    assert (tmp_path / "ended").read_text() == "1"  # it ran once, to its end


def test_worker_hung_up_hands_its_job_back_and_restarts_in_place(
    farm: Farm, tmp_path: Path
) -> None:
    # SIGHUP makes Celery stop the worker warmly and exec it again in the same process.
    farm.start("hup", node_cores=2, node_labels={"hup": "yes"})
    pid = farm.procs["hup"].pid
    before = farm.nodes.get("hup")
    assert before is not None
    record = tmp_path / "runs.txt"
    job_id = farm.submit(argv=[PY, "-c", RECORDER, str(record), "3"], retries=1,
                         resources={"labels": {"hup": "yes"}})
    assert farm.wait_state(job_id, "running")["node"] == "hup"
    first = wait_for(lambda: record.read_text() if record.exists() else "",
                     lambda t: "start" in t, 10, "the first run").split()[0]
    os.kill(pid, signal.SIGHUP)
    after = wait_for(lambda: farm.nodes.get("hup"),
                     lambda n: n is not None and n.alive and n.boot_id != before.boot_id, 60,
                     "the hung-up worker to register again")
    assert farm.procs["hup"].poll() is None and psutil.Process(pid).is_running(), farm.log("hup")
    assert after is not None
    # the running job was handed back, not waited for, and ran again after the restart
    done = farm.wait_state(job_id, "completed", timeout_s=30)
    assert done["node"] == "hup" and done["attempt"] >= 2
    runs = record.read_text().splitlines()
    assert runs[0] == f"{first} start" and f"{first} end" not in runs
    assert len(runs) == 3 and runs[2] == runs[1].replace("start", "end")
    again = farm.submit(argv=["true"], resources={"labels": {"hup": "yes"}})
    assert farm.wait_state(again, "completed", timeout_s=30)["node"] == "hup"


def test_job_sent_to_a_node_that_died_before_picking_it_up_is_requeued_for_free(
    farm: Farm,
) -> None:
    # 'ghost' registers once and never runs: the job is sent to its queue, nobody takes it
    farm.nodes.heartbeat(NodeInfo(name="ghost", hostname="ghost", queue="simfarm.node.ghost",
                                  cores_total=2, memory_mb_total=1024,
                                  labels={"ghost": "yes"}), ttl_s=1.5)
    job_id = farm.submit(argv=["true"], retries=0, resources={"labels": {"ghost": "yes"}})
    assert farm.wait_state(job_id, "scheduled")["node"] == "ghost"
    back = farm.wait_state(job_id, "pending", timeout_s=20)  # retries=0, yet not failed
    assert "worker lost (ghost" in (back["reason"] or "") or back["reason"].startswith("never")
    farm.start("haunt", node_cores=2, node_labels={"ghost": "yes"})
    done = farm.wait_state(job_id, "completed", timeout_s=30)
    assert done["node"] == "haunt" and done["attempt"] == 2


def test_fencing_token_stops_a_paused_former_leader(farm: Farm) -> None:
    connection = farm.jobs.connection
    store = JobStore(connection, "fencetest:")
    old = LeaderLock(connection, "fencetest:", ttl_s=0.2)
    assert old.acquire_or_renew() and old.fence is not None
    stale = old.fence
    time.sleep(0.3)  # the old leader is "paused" past its lease; the lock expires
    new = LeaderLock(connection, "fencetest:", ttl_s=5)
    assert new.acquire_or_renew()
    job, _ = store.create(JobSpec(argv=["true"]))
    with pytest.raises(StaleAttempt):
        store.transition(job.id, JobState.SCHEDULED, new_attempt=True, fence=stale,
                         sources=[JobState.PENDING], fields={"node": "x"})
    store.transition(job.id, JobState.SCHEDULED, new_attempt=True, fence=new.fence,
                     sources=[JobState.PENDING], fields={"node": "x"})
    assert store.get(job.id).state is JobState.SCHEDULED


def test_dispatcher_leader_failover(farm: Farm) -> None:
    def leader() -> str | None:
        best: tuple[int, str] | None = None
        for name, proc in farm.procs.items():
            if proc.poll() is not None:
                continue
            for line in farm.log(name).splitlines():
                if ": leading (fence " in line:
                    fence = int(line.rsplit("(fence ", 1)[1].split(")")[0])
                    best = max(best or (fence, name), (fence, name))
        return best[1] if best else None

    first = wait_for(leader, lambda n: n is not None, 10, "a leader")
    assert first is not None
    os.kill(farm.procs[first].pid, signal.SIGKILL)
    farm.procs[first].wait(timeout=10)
    # every worker still alive, whichever earlier tests of the module left running
    anywhere = [n for n, proc in farm.procs.items() if n != first and proc.poll() is None]
    job_id = farm.submit(argv=["true"], resources={"cores": 1})
    done = farm.wait_state(job_id, "completed", timeout_s=30)
    assert done["node"] in anywhere
    second = wait_for(leader, lambda n: n not in (None, first), 10, "a new leader")
    assert second in anywhere


def dispatcher_child(worker: psutil.Process) -> psutil.Process | None:
    """The dispatcher process a worker runs beside it, if it runs one now."""
    for child in worker.children():
        try:
            if "simfarm.workers.dispatcher_process" in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_dispatcher_runs_beside_its_worker_is_restarted_and_dies_with_it(
    farm: Farm,
) -> None:
    farm.start("beside", node_cores=2, node_labels={"beside": "yes"})
    worker = psutil.Process(farm.procs["beside"].pid)

    def dispatcher() -> psutil.Process | None:
        return dispatcher_child(worker)

    first = wait_for(dispatcher, lambda p: p is not None, 20, "the dispatcher process")
    assert first is not None
    first.kill()
    second = wait_for(dispatcher, lambda p: p is not None and p.pid != first.pid, 20,
                      "the dispatcher process to be started again")
    assert second is not None
    assert "the dispatcher process exited with status -9" in farm.log("beside")
    job_id = farm.submit(argv=["true"], resources={"labels": {"beside": "yes"}})
    assert farm.wait_state(job_id, "completed", timeout_s=30)["node"] == "beside"
    os.kill(worker.pid, signal.SIGKILL)
    farm.procs["beside"].wait(timeout=10)
    # its pipe closed with the worker: the dispatcher stops too, it is not left behind
    wait_for(lambda: gone(second), bool, 15, "the dispatcher process to exit")


def test_a_worker_stopped_with_its_dispatcher_by_the_service_manager_does_not_restart_it(
    farm: Farm,
) -> None:
    # systemd's stop sends SIGTERM to every process of the unit at once
    farm.start("unit", node_cores=2, node_labels={"unit": "yes"})
    worker = psutil.Process(farm.procs["unit"].pid)
    child = wait_for(lambda: dispatcher_child(worker), lambda p: p is not None, 20,
                     "the dispatcher process")
    assert child is not None
    child.terminate()
    worker.terminate()
    assert farm.procs["unit"].wait(timeout=30) == 0, farm.log("unit")
    assert gone(child)
    log = farm.log("unit")
    assert "the dispatcher process stopped with the worker" in log, log[-3000:]
    assert "starting it again" not in log

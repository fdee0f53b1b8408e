"""A farm across network addresses: Redis and the gateway on this machine, two workers
each in its own network namespace (tests/netns.py), reaching Redis only over their veth
link. Then one worker is partitioned by taking its link down — packets vanish, no
connection is reset, calls hang until their timeouts — while the other carries on.

Shows: each node works from its own address; a partitioned node's running job is stopped
by its own worker (its lease cannot be renewed) before the job runs again elsewhere, so it
never runs twice at once; the job ends completed once, and the node rejoins when the link
comes back without disturbing what happened meanwhile."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from simfarm.workers.context import redis_timeout_s
from tests.conftest import RedisServer
from tests.helpers import (
    FarmApi,
    free_port,
    start_gateway,
    start_worker,
    stop_processes,
    wait_for,
)
from tests.netns import TestHost, require_netns

pytestmark = [pytest.mark.timeout(180), pytest.mark.xdist_group("netns")]

PY = sys.executable
#: records ``<pid> start`` / ``<pid> end``; a run that finds another run of the same job
#: still alive (the lock is held until that process is gone) records ``<pid> overlap``.
#: The first run takes ``argv[2]`` seconds (long: it is meant to be stopped), later ones 1 s.
EXCLUSIVE = ("import fcntl, os, sys, time\n"
             "again = os.path.exists(sys.argv[1])\n"
             "log = open(sys.argv[1], 'a', buffering=1)\n"
             "lock = open(sys.argv[1] + '.lock', 'w')\n"
             "try:\n"
             "    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except OSError:\n"
             "    log.write(f'{os.getpid()} overlap\\n')\n"
             "    sys.exit(3)\n"
             "log.write(f'{os.getpid()} start\\n')\n"
             "time.sleep(1.0 if again else float(sys.argv[2]))\n"
             "log.write(f'{os.getpid()} end\\n')\n")


TTL_S, GRACE_S = 3.0, 1.0
SETTINGS = Settings(heartbeat_s=0.3, heartbeat_ttl_s=TTL_S, kill_grace_s=GRACE_S)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class NetFarm(FarmApi):
    http: httpx.Client
    nodes: NodeStore
    redis: redis.Redis
    hosts: dict[str, TestHost]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def netfarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetFarm]:
    require_netns()
    root = tmp_path_factory.mktemp("netfarm")
    hosts: dict[str, TestHost] = {}
    try:
        hosts["island"] = TestHost(1)
        hosts["mainland"] = TestHost(2)
        server = RedisServer(root / "redis", appendonly=False, extra_args=(
            "--bind", "127.0.0.1", *(h.host_ip for h in hosts.values()),
            "--protected-mode", "no"))
        server.start()
        settings = SETTINGS.model_copy(update={
            "redis_url": server.url, "state_dir": root / "state",
            "gateway_port": free_port(), "node_name": "gateway"})
        gateway = start_gateway(settings, root / "gateway.log")
        connection = redis.Redis.from_url(server.url)
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}",
                          timeout=30) as http:
            farm = NetFarm(http, NodeStore(connection), connection, hosts)
            try:
                for name, host in hosts.items():
                    node = settings.model_copy(update={
                        "node_name": name, "node_cores": 2, "worker_concurrency": 2,
                        "node_labels": {"pool": "net", "site": name},
                        "redis_url": f"redis://{host.host_ip}:{server.port}/0"})
                    farm.procs[name] = start_worker(node, root / f"{name}.log",
                                                    prefix=host.prefix)
                for name in hosts:
                    wait_for(lambda n=name: farm.nodes.is_alive(n), bool, 60,
                             f"worker {name} to register over its link")
                yield farm
            finally:
                stop_processes([*farm.procs.values(), gateway])
                server.stop()
    finally:
        for host in hosts.values():
            host.delete()


def test_each_worker_works_from_its_own_address(netfarm: NetFarm) -> None:
    peers = {c["addr"].rsplit(":", 1)[0] for c in netfarm.redis.client_list()}
    assert {h.ip for h in netfarm.hosts.values()} <= peers
    ids = {site: netfarm.submit(argv=[PY, "-c", "print('hi')"],
                                resources={"labels": {"site": site}})
           for site in netfarm.hosts}
    for site, job_id in ids.items():
        assert netfarm.wait_state(job_id, "completed")["node"] == site


def test_partitioned_worker_stops_its_job_before_it_runs_again_elsewhere(
    netfarm: NetFarm, tmp_path: Path
) -> None:
    limits = "/api/v1/workers/mainland/limits"
    assert netfarm.http.patch(limits, json={"max_jobs": 0}).status_code == 200
    wait_for(lambda: netfarm.worker("mainland"), lambda w: w["status"] == "held", 10,
             "mainland to take no new jobs")
    record = tmp_path / "runs.txt"
    job_id = netfarm.submit(argv=[PY, "-c", EXCLUSIVE, str(record), "60"], retries=1,
                            resources={"cores": 1, "labels": {"pool": "net"}})
    assert netfarm.wait_state(job_id, "running")["node"] == "island"
    first = int(wait_for(lambda: record.read_text() if record.exists() else "",
                         lambda t: "start" in t, 10, "the first run").split()[0])
    assert netfarm.http.patch(limits, json={"max_jobs": None}).status_code == 200
    wait_for(lambda: netfarm.worker("mainland"), lambda w: w["status"] == "ready", 10,
             "mainland to take jobs again")

    cut_at = time.monotonic()
    netfarm.hosts["island"].cut()
    try:
        # Its worker cannot renew the lease: it must stop the run by the time the lease
        # (at most heartbeat_ttl_s old) plus one blocked Redis call plus the kill grace
        # are over — the margin the dispatcher waits for before handing the job on.
        wait_for(lambda: running(first), lambda alive: not alive, 30,
                 "the partitioned run to be stopped by its own worker")
        assert time.monotonic() - cut_at <= TTL_S + redis_timeout_s(SETTINGS) + GRACE_S
        done = netfarm.wait_state(job_id, "completed", "failed", timeout_s=60)
        assert (done["state"], done["node"], done["attempt"]) == ("completed", "mainland", 2)
        runs = record.read_text().splitlines()
        assert runs[0] == f"{first} start" and f"{first} end" not in runs
        assert not [r for r in runs if r.endswith("overlap")], runs
        second = runs[1].split()[0]
        assert runs[1:] == [f"{second} start", f"{second} end"]
        assert netfarm.worker("island")["status"] == "lost"
    finally:
        netfarm.hosts["island"].heal()
    wait_for(lambda: netfarm.nodes.is_alive("island"), bool, 60,
             "island to rejoin once its link is back")
    after = netfarm.job(job_id)
    assert (after["state"], after["node"], after["attempt"]) == ("completed", "mainland", 2)
    again = netfarm.submit(argv=[PY, "-c", "print('back')"],
                           resources={"labels": {"site": "island"}})
    assert netfarm.wait_state(again, "completed", timeout_s=30)["node"] == "island"

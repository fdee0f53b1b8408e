"""Redis with failover: ``redis+sentinel://`` URLs for the store and Celery, a primary
SIGKILLed and replaced by its replica, clients following the new primary."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.redis_url import celery_urls, connect, parse_sentinel_url, redact
from simfarm.common.settings import Settings
from tests.chaos import RECORDER, assert_never_twice_at_once
from tests.helpers import (
    free_port,
    start_gateway,
    start_worker,
    stop_process,
    stop_processes,
    wait_for,
    wait_until,
)
from tests.sentinel import SERVICE, ReplicatedRedis


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    cluster = ReplicatedRedis(tmp_path / "redis")
    yield cluster
    cluster.stop()


def test_sentinel_urls_are_parsed_and_redacted() -> None:
    url = "redis+sentinel://:s3cret@h1:26379,h2,[::1]:26380/mymaster/2?sentinel_password=x"
    parsed = parse_sentinel_url(url)
    assert parsed is not None
    assert parsed.sentinels == (("h1", 26379), ("h2", 26379), ("::1", 26380))
    assert (parsed.service, parsed.db, parsed.password) == ("mymaster", 2, "s3cret")
    assert parsed.sentinel_password == "x"
    assert "s3cret" not in redact(url) and "sentinel_password=x" not in redact(url)
    broker, options = celery_urls(url)
    assert broker == ("sentinel://:s3cret@h1:26379/2;sentinel://:s3cret@h2:26379/2;"
                      "sentinel://:s3cret@::1:26380/2")
    assert options == {"master_name": "mymaster", "sentinel_kwargs": {"password": "x"}}
    assert parse_sentinel_url("redis://h1:6379/0") is None
    with pytest.raises(ValueError, match="primary's name is missing"):
        parse_sentinel_url("redis+sentinel://h1:26379")
    with pytest.raises(ValueError, match="bad port"):
        parse_sentinel_url("redis+sentinel://h1:x/m")


def test_a_client_follows_the_primary_across_a_failover(replicated: ReplicatedRedis) -> None:
    client = connect(replicated.url, socket_timeout=2, socket_connect_timeout=2)
    pipe = client.pipeline(transaction=False)  # WAIT counts this connection's writes
    pipe.set("before", "1").wait(1, 5000)
    assert pipe.execute()[1] == 1  # on the replica too
    old = replicated.kill_primary()
    new = replicated.wait_failover(old)
    assert new is not old

    def write() -> bool:
        try:
            return bool(client.set("after", "2"))
        except redis.ConnectionError:
            return False  # the dead primary's connections fail once, then reconnect

    wait_until(write, 20, "a write on the new primary")
    assert client.get("before") == b"1"
    replicated.restart(old)  # back as a replica of the new primary
    wait_until(lambda: replicated.replicas_of(new) == 1, 30, "the old primary to rejoin")
    assert replicated.primary() is new
    assert SERVICE in replicated.url


def submit_retrying(http: httpx.Client, spec: dict[str, Any], key: str) -> str:
    """Submit until acknowledged (201, or 200 for a replay of the same key), retrying
    what a failover answers meanwhile (503, a cut connection), as clients should."""
    deadline = time.monotonic() + 120  # Sentinel turns a returned primary into a replica
    while True:                          # about 10 s after it is back
        try:
            response = http.post("/api/v1/jobs", json=spec, headers={"Idempotency-Key": key})
            if response.status_code in (200, 201):
                return str(response.json()["id"])
            assert response.status_code == 503, response.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "no acknowledgement for two minutes"
        time.sleep(0.2)  # Retry-After, shortened


def test_farm_on_sentinel_survives_the_primary_killed_mid_run(
        replicated: ReplicatedRedis, tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    settings = Settings(redis_url=replicated.url, state_dir=tmp_path / "state",
                        gateway_port=free_port(), node_name="failover-gw",
                        heartbeat_s=0.5, heartbeat_ttl_s=10.0, kill_grace_s=1.0)
    gateway = start_gateway(settings, tmp_path / "gateway.log")
    workers = []
    try:
        for name in ("fo-a", "fo-b"):
            node = settings.model_copy(update={"node_name": name, "worker_concurrency": 2,
                                               "node_cores": 2})
            workers.append(start_worker(node, tmp_path / f"{name}.log"))
        http = httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30)
        wait_for(lambda: http.get("/api/v1/health").json().get("nodes_alive"),
                 lambda n: n == 2, 60, "both workers")
        spec = {"argv": [sys.executable, "-c", RECORDER, str(records), "0.4"], "retries": 3}
        ids = [submit_retrying(http, spec, f"fo-{i}") for i in range(12)]

        def completed() -> int:
            jobs = http.get("/api/v1/jobs", params={"state": "completed", "limit": 500})
            return len(jobs.json()["jobs"]) if jobs.status_code == 200 else -1

        wait_for(completed, lambda n: n >= 3, 60, "a few jobs to complete")
        # More submits while the primary dies: each is acknowledged once a replica has
        # it. With one replica that is after the old primary is back as the new one's.
        late: list[str] = []
        errors: list[BaseException] = []

        def submit_late() -> None:
            try:
                late.extend(submit_retrying(http, spec, f"fo-{i}") for i in range(12, 24))
            except BaseException as exc:
                errors.append(exc)

        submitter = threading.Thread(target=submit_late)
        submitter.start()
        old = replicated.kill_primary()
        new = replicated.wait_failover(old)
        replicated.restart(old)
        submitter.join(timeout=150)
        assert not errors and len(late) == 12, errors
        ids += late

        def states() -> list[str]:
            try:
                return [http.get(f"/api/v1/jobs/{i}").json()["state"] for i in ids]
            except (httpx.TransportError, KeyError):
                return []

        final = wait_for(states, lambda s: len(s) == len(ids) and all(
            x in ("completed", "failed", "cancelled") for x in s), 120, "every job to end")
        assert final == ["completed"] * len(ids)
        runs = assert_never_twice_at_once(records, ids)
        assert all(sum(r.ended for r in runs[i]) == 1 for i in ids), runs
        assert replicated.primary() is new
        wait_until(lambda: replicated.replicas_of(new) == 1, 30, "the old primary to rejoin")
        http.close()
    finally:
        stop_processes([*workers, gateway])


def test_a_submit_no_replica_confirmed_is_not_acknowledged(
        replicated: ReplicatedRedis, tmp_path: Path) -> None:
    """With the replica stalled (SIGSTOP) the submit answers 503 not_replicated; the same
    request, retried with its Idempotency-Key once the replica is back, gets the job it
    created: one job, acknowledged once replicated."""
    settings = Settings(redis_url=replicated.url, state_dir=tmp_path / "state",
                        gateway_port=free_port(), node_name="wait-gw",
                        redis_wait_timeout_ms=300)
    gateway = start_gateway(settings, tmp_path / "gateway.log")
    replica = next(s for s in replicated.servers if s is not replicated.primary())
    assert replica.proc is not None
    http = httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30)
    try:
        spec = {"argv": ["true"], "name": "waited"}
        ok = http.post("/api/v1/jobs", json=spec, headers={"Idempotency-Key": "w-1"})
        assert ok.status_code == 201, ok.text
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            refused = http.post("/api/v1/jobs", json=spec, headers={"Idempotency-Key": "w-2"})
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "not_replicated" and "Retry-After" in refused.headers
        again = wait_for(lambda: http.post("/api/v1/jobs", json=spec,
                                           headers={"Idempotency-Key": "w-2"}),
                         lambda r: r.status_code in (200, 201), 20, "the retried submit")
        named = http.get("/api/v1/jobs", params={"limit": 100}).json()["jobs"]
        assert sorted(j["id"] for j in named if j["spec"]["name"] == "waited") == sorted(
            [ok.json()["id"], again.json()["id"]])
    finally:
        http.close()
        stop_process(gateway)


def test_a_job_starts_only_once_a_replica_has_its_claim(
        replicated: ReplicatedRedis, tmp_path: Path) -> None:
    """With the replica stalled (SIGSTOP), a worker that waits for a replica claims its
    job (``running`` on the primary) but does not start the program - a failover now
    would lose the claim and the job would run again - while a worker that does not wait
    runs a job to its end meanwhile. With the replica back the program starts; it ran
    once."""
    records = tmp_path / "records"
    records.mkdir()
    # The gateway acknowledges at once (the replica is stalled); the lease outlasts the stall.
    settings = Settings(redis_url=replicated.url, state_dir=tmp_path / "state",
                        gateway_port=free_port(), node_name="claim-gw",
                        redis_wait_replicas=0, heartbeat_s=0.5, heartbeat_ttl_s=60.0)
    gateway = start_gateway(settings, tmp_path / "gateway.log")
    workers = [start_worker(settings.model_copy(update={
        "node_name": f"claim-w{n}", "redis_wait_replicas": n, "redis_wait_timeout_ms": 200,
        "node_labels": {"pool": f"w{n}"}}), tmp_path / f"w{n}.log") for n in (0, 1)]
    replica = next(s for s in replicated.servers if s is not replicated.primary())
    assert replica.proc is not None
    http = httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30)

    def submit(pool: str) -> str:
        spec = {"argv": [sys.executable, "-c", RECORDER, str(records), "0.2"],
                "resources": {"labels": {"pool": pool}}}
        response = http.post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def state(job_id: str) -> str:
        return str(http.get(f"/api/v1/jobs/{job_id}").json()["state"])

    try:
        wait_for(lambda: http.get("/api/v1/health").json().get("nodes_alive"),
                 lambda n: n == 2, 60, "both workers")
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            waiting = submit("w1")
            wait_for(lambda: state(waiting), lambda s: s == "running", 30, "the claim")
            plain = submit("w0")
            wait_for(lambda: state(plain), lambda s: s == "completed", 30, "the other job")
            assert "end" in (records / plain).read_text()
            assert not (records / waiting).exists(), "started before a replica had its claim"
            assert state(waiting) == "running"
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        wait_for(lambda: state(waiting), lambda s: s == "completed", 60, "the waiting job")
        runs = assert_never_twice_at_once(records, [waiting, plain])
        assert [len(runs[waiting]), len(runs[plain])] == [1, 1]
    finally:
        http.close()
        stop_processes([*workers, gateway])


def test_a_worker_rides_out_failover_after_failover(
        replicated: ReplicatedRedis, tmp_path: Path) -> None:
    """A Celery worker on Sentinel, running a job each time, survives one failover after
    another and still runs jobs."""
    settings = Settings(redis_url=replicated.url, state_dir=tmp_path / "state",
                        gateway_port=free_port(), node_name="twice-gw",
                        heartbeat_s=0.5, heartbeat_ttl_s=10.0)
    gateway = start_gateway(settings, tmp_path / "gateway.log")
    node = settings.model_copy(update={"node_name": "twice", "worker_concurrency": 1})
    worker = start_worker(node, tmp_path / "twice.log")
    http = httpx.Client(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=30)
    try:
        wait_for(lambda: http.get("/api/v1/health").json().get("nodes_alive"),
                 lambda n: n == 1, 60, "the worker")
        for round_ in range(2):  # the second on the primary the first one promoted
            running = submit_retrying(http, {"argv": ["sleep", "3"]}, f"busy-{round_}")
            wait_for(lambda j=running: http.get(f"/api/v1/jobs/{j}").json()["state"],  # type: ignore[misc]
                     lambda s: s == "running", 30, "a running job (an unacknowledged message)")
            old = replicated.kill_primary()
            new = replicated.wait_failover(old)
            replicated.restart(old)
            wait_until(lambda n=new: replicated.replicas_of(n) == 1, 30,  # type: ignore[misc]
                       "the old primary to rejoin")
            job = submit_retrying(http, {"argv": ["true"]}, f"twice-{round_}")

            def state(j: str = job) -> str:
                try:
                    return str(http.get(f"/api/v1/jobs/{j}").json()["state"])
                except (httpx.TransportError, KeyError):
                    return "?"

            assert worker.poll() is None, (tmp_path / "twice.log").read_text()[-3000:]
            wait_for(state, lambda s: s == "completed", 60, f"the job after failover {round_}")
        assert worker.poll() is None
    finally:
        http.close()
        stop_processes([worker, gateway])


def test_the_worker_keeps_its_broker_transport_when_it_moves_to_another_sentinel() -> None:
    """kombu parses the next URL of the sentinel list again when a reconnect moves on
    to it, and takes the transport its scheme names: simfarm's (which rides out refused
    writes and channels left behind by a reconnect), not kombu's own, which stopped busy
    workers in the failover soak."""
    from simfarm.workers.app import make_celery
    from simfarm.workers.broker import SentinelTransport

    app = make_celery(Settings(redis_url="redis+sentinel://127.0.0.1:1,127.0.0.1:2/m/0"))
    connection = app.connection_for_read()
    try:
        assert isinstance(connection.transport, SentinelTransport)
        connection.switch(connection.alt[1])  # what a failed connect does
        assert isinstance(connection.transport, SentinelTransport)
    finally:
        connection.release()

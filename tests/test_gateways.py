"""Several gateways serving one farm behind a real load balancer (Debian's HAProxy, run
from deploy/haproxy/haproxy.cfg): any request on any gateway, one killed mid-load with
submits and WebSocket followers carrying on through the other, nothing lost or repeated;
and what the gateways share instead of keeping it in memory (one-time login codes,
uploads of the same blob)."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from simfarm.client import Client
from simfarm.common.models import JobEvent
from simfarm.common.settings import Settings
from simfarm.common.tokens import TokenEntry, hash_token
from tests.balancer import Balancer
from tests.chaos import RECORDER, assert_never_twice_at_once
from tests.conftest import RedisServer
from tests.helpers import (
    ROOT,
    free_port,
    start_gateway,
    start_worker,
    stop_processes,
    wait_for,
    wait_until,
)

TOKEN = "gateways-admin-token"
PUBLIC_NAME = "simfarm.lab.example"  # the balancer's name in deploy/haproxy/haproxy.cfg
FINAL = {"completed", "failed", "cancelled"}


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a gateway and its gunicorn workers at once: the host died."""
    try:
        parent = psutil.Process(proc.pid)
        victims = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        victims = []
    for victim in victims:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=10)
    proc.wait(timeout=10)


@dataclass
class Farm:
    """One Redis, gateways started on demand, a worker; all stopped at the end."""

    root: Path
    settings: Settings
    gateways: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_gateway(self, name: str, **overrides: Any) -> int:
        port = free_port()
        settings = self.settings.model_copy(update={"gateway_port": port,
                                                    "node_name": name, **overrides})
        self.gateways[name] = start_gateway(settings, self.root / f"{name}.log")
        self.ports[name] = port
        return port

    def direct(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.ports[name]}", timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    redis_server = RedisServer(tmp_path / "redis", extra_args=("--appendfsync", "always"))
    redis_server.start()
    settings = Settings(
        redis_url=redis_server.url, state_dir=tmp_path / "state",
        blob_dir=tmp_path / "shared-blobs",  # the gateways' shared blob folder
        auth_tokens=[TokenEntry(user="admin", hash=hash_token(TOKEN), admin=True)],
        gateway_hostnames=[PUBLIC_NAME], gateway_trusted_proxies=["127.0.0.1"],
        gateway_processes=1, heartbeat_s=0.5, heartbeat_ttl_s=5.0, kill_grace_s=1.0)
    the_farm = Farm(tmp_path, settings)
    try:
        yield the_farm
    finally:
        stop_processes([*the_farm.others, *the_farm.gateways.values()])
        redis_server.stop()


class Follower(threading.Thread):
    """A WebSocket client following every state event through the balancer (the
    client library reconnects and resumes from its last event id by itself)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[JobEvent] = []
        self.expected: set[str] = set()
        self.done = threading.Event()
        self.errors: list[BaseException] = []

    def finished(self) -> bool:
        ended = {e.job_id for e in self.events if e.data.get("to") in FINAL}
        return bool(self.expected) and self.expected <= ended

    def run(self) -> None:
        try:
            with Client(self.url, token=TOKEN, timeout=30) as client:
                for event in client.stream(types=["state"], since="0"):
                    self.events.append(event)
                    if self.done.is_set() and self.finished():
                        return
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


def submit_retrying(http: httpx.Client, spec: dict[str, Any], key: str,
                    retried: list[str]) -> str:
    """Submit until acknowledged, retrying with the same Idempotency-Key whatever a dying
    gateway answers meanwhile (a cut connection, 502/503 from the balancer)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = http.post("/api/v1/jobs", json=spec, headers={"Idempotency-Key": key})
            if response.status_code in (200, 201):
                return str(response.json()["id"])
            assert response.status_code in (502, 503, 504), response.text
            retried.append(f"{key}: {response.status_code}")
        except httpx.TransportError as exc:
            retried.append(f"{key}: {type(exc).__name__}")
        assert time.monotonic() < deadline, f"{key}: no acknowledgement for a minute"
        time.sleep(0.1)


def test_two_gateways_behind_haproxy_one_killed_mid_load(farm: Farm, tmp_path: Path) -> None:
    """Submits (retried by the client) and WebSocket followers go on through the other
    gateway when one is SIGKILLed mid-load: every acknowledged job runs once and
    completes, no job is created twice, and every follower sees every state change of
    every job exactly once, in order."""
    for name in ("gw-a", "gw-b"):
        farm.start_gateway(name)
    records = tmp_path / "records"
    records.mkdir()
    node = farm.settings.model_copy(update={"node_name": "ha-node", "worker_concurrency": 4,
                                            "node_cores": 4})
    farm.others.append(start_worker(node, tmp_path / "worker.log"))
    balancer = Balancer(tmp_path, farm.ports)
    try:
        wait_for(balancer.states, lambda s: s == {"gw-a": "UP", "gw-b": "UP"}, 30,
                 "HAProxy to see both gateways up")
        http = httpx.Client(base_url=balancer.url, timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"})
        wait_for(lambda: http.get("/api/v1/health").json().get("nodes_alive"),
                 lambda n: n == 1, 60, "the worker")
        followers = [Follower(balancer.url) for _ in range(4)]
        for follower in followers:
            follower.start()

        def ws_clients(name: str) -> float:
            with farm.direct(name) as direct:
                text = direct.get("/metrics").text
            return sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("simfarm_websocket_clients "))

        # leastconn spreads the four followers over both gateways
        wait_for(lambda: (ws_clients("gw-a"), ws_clients("gw-b")),
                 lambda c: c[0] >= 1 and c[1] >= 1 and sum(c) == 4, 30,
                 "followers on both gateways")
        spec = {"argv": [sys.executable, "-c", RECORDER, str(records), "0.2"], "retries": 2}
        total, threads = 120, 3  # paced over about 6 s: the kill lands mid-load
        acked: dict[int, str] = {}
        retried: list[str] = []
        errors: list[BaseException] = []

        def submitter(first: int) -> None:
            try:
                with httpx.Client(base_url=balancer.url, timeout=30,
                                  headers={"Authorization": f"Bearer {TOKEN}"}) as mine:
                    for n in range(first, total, threads):
                        acked[n] = submit_retrying(mine, spec, f"ha-{n}", retried)
                        time.sleep(0.15)
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=submitter, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        wait_for(lambda: len(acked), lambda n: n >= total // 3, 60, "a third acknowledged")
        killed_at = len(acked)
        kill_tree(farm.gateways.pop("gw-a"))  # mid-load, with followers and submits on it
        for thread in pool:
            thread.join(timeout=120)
        assert not errors, errors
        assert len(acked) == total and killed_at < total
        wait_for(balancer.states, lambda s: s.get("gw-a") == "DOWN", 30,
                 "HAProxy to mark the killed gateway down")
        ids = [acked[n] for n in range(total)]
        assert len(set(ids)) == total  # one job per key, retries included

        def states() -> list[str]:
            return [http.get(f"/api/v1/jobs/{i}").json()["state"] for i in ids]

        final = wait_for(states, lambda s: all(x in FINAL for x in s), 120, "every job to end")
        assert final == ["completed"] * total
        listed = http.get("/api/v1/jobs", params={"limit": 500}).json()["jobs"]
        assert sorted(j["id"] for j in listed) == sorted(ids)  # nothing created twice
        runs = assert_never_twice_at_once(records, ids)
        assert all(sum(r.ended for r in runs[i]) == 1 for i in ids), runs

        for follower in followers:
            follower.expected = set(ids)
            follower.done.set()
        truth = [e.id for i in ids for e in http_events(http, i)]
        for follower in followers:
            wait_until(lambda f=follower: f.finished() or not f.is_alive(), 60,  # type: ignore[misc]
                       "a follower to see every job end")
            assert not follower.errors, follower.errors
            seen = [e.id for e in follower.events if e.job_id in acked.values()]
            assert len(seen) == len(set(seen)), "an event was delivered twice"
            assert seen == sorted(seen, key=_event_key), "events out of order"
            assert sorted(seen, key=_event_key) == sorted(truth, key=_event_key)
        http.close()
    finally:
        balancer.stop()


def _event_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def http_events(http: httpx.Client, job_id: str) -> list[JobEvent]:
    """A job's stored state events, read over REST."""
    body = http.get(f"/api/v1/jobs/{job_id}/events").json()
    return [JobEvent.model_validate(e) for e in body["events"] if e["type"] == "state"]


def test_a_one_time_login_code_works_once_across_gateways(farm: Farm) -> None:
    """The dashboard link `simfarm up` prints signs in one browser, on whichever gateway
    (or gateway process) it lands: not once per gateway."""
    code = "one-time-code-for-two-gateways"
    login = {"login_code_sha256": hashlib.sha256(code.encode()).hexdigest(),
             "local_token": TOKEN}
    for name in ("gw-a", "gw-b"):
        farm.start_gateway(name, gateway_processes=2, **login)
    first = farm.direct("gw-a").get("/login", params={"code": code})
    assert first.status_code == 200 and TOKEN in first.text
    for name in ("gw-a", "gw-b", "gw-b"):  # other processes, the other gateway
        again = farm.direct(name).get("/login", params={"code": code})
        assert again.status_code == 403, again.text


def test_one_blob_uploaded_through_two_gateways_at_once(farm: Farm) -> None:
    """Two gateways sharing the blob folder: while an upload of a blob is under way on
    one, the same blob sent to the other is refused (409, not a second writer on the
    same part file); once the first is done the blob is stored, whole, for both."""
    for name in ("gw-a", "gw-b"):
        farm.start_gateway(name)
    body = b"simfarm project archive " * 200_000  # 4.8 MB: several 1 MiB chunks
    sha = hashlib.sha256(body).hexdigest()
    half = 3 * len(body) // 5  # two chunks and more: the part file has bytes
    slow = socket.create_connection(("127.0.0.1", farm.ports["gw-a"]), timeout=30)
    try:
        slow.sendall(f"PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/octet-stream\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:half])
        part = farm.settings.blob_root() / "uploads" / "admin" / f"{sha}.part"
        wait_until(lambda: part.exists() and part.stat().st_size > 0, 20,
                   "the first upload to be under way")
        with farm.direct("gw-b") as other:
            refused = other.put(f"/api/v1/blobs/{sha}", content=body,
                                headers={"Content-Type": "application/octet-stream"})
            assert refused.status_code == 409, refused.text
            slow.sendall(body[half:])
            answer = slow.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 201"), answer
            stored = other.get(f"/api/v1/blobs/{sha}")
            assert stored.status_code == 200 and stored.content == body
    finally:
        slow.close()


def test_the_audit_names_the_client_behind_a_trusted_balancer(farm: Farm) -> None:
    """Behind a balancer every connection comes from it: the audit log records the
    client's address from X-Forwarded-For when the balancer is trusted, and only then
    (a client cannot make itself someone else by sending the header directly)."""
    farm.start_gateway("gw-a")
    farm.start_gateway("gw-b", gateway_trusted_proxies=[])
    for name, forwarded, source in (("gw-a", "203.0.113.9, 127.0.0.1", "203.0.113.9"),
                                    ("gw-b", "203.0.113.9", "127.0.0.1")):
        with farm.direct(name) as http:
            made = http.post("/api/v1/jobs", json={"argv": ["true"], "name": name},
                             headers={"X-Forwarded-For": forwarded})
            assert made.status_code == 201, made.text
            job = made.json()["id"]
            entries = wait_for(lambda h=http, j=job: h.get(  # type: ignore[misc]
                "/api/v1/audit", params={"target": j}).json()["entries"],
                lambda e: len(e) == 1, 10, "the audit entry")
            assert entries[0]["source"] == source


def test_nginx_from_the_deploy_file_serves_rest_and_websockets(farm: Farm,
                                                               tmp_path: Path) -> None:
    """deploy/nginx/simfarm.conf in front of two gateways: REST calls and a WebSocket
    subscription (the Upgrade passed through) work through it."""
    import shutil

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed (HAProxy is the balancer the tests run)")
    for name in ("gw-a", "gw-b"):
        farm.start_gateway(name)
    port = free_port()
    site = (ROOT / "deploy" / "nginx" / "simfarm.conf").read_text()
    site = site.replace("gw-a:8765", f"127.0.0.1:{farm.ports['gw-a']}")
    site = site.replace("gw-b:8765", f"127.0.0.1:{farm.ports['gw-b']}")
    site = site.replace("listen 8765;", f"listen 127.0.0.1:{port};")
    (tmp_path / "simfarm.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/nginx-error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path};\n"
        f"  proxy_temp_path {tmp_path};\n  include {tmp_path}/simfarm.conf;\n}}\n")
    proc = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    farm.others.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200, 20,
               "nginx")
    with Client(url, token=TOKEN, timeout=30) as client:
        job = client.submit(["true"])
        first = next(iter(client.stream(jobs=[job.id], since="0")))
        assert first.job_id == job.id and first.data.get("to") == "pending"

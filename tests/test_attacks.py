"""The farm attacked as the probe of issue 20 did: from inside a job, from another local
account, from a web page, all against real processes on 127.0.0.1.

* ``locked_farm``: a Redis with ACL users (tests/conftest RedisServer + an ACL file
  from simfarm.client.embedded_auth), a gateway connecting as ``gateway`` and a worker
  as ``dispatcher`` that runs jobs as an unprivileged test account (``job_account``).
* ``embedded``: a real ``EmbeddedService`` (what ``simfarm up`` starts).
* the session gateway (open mode, no tokens) for the web attacks.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from simfarm.client.embedded import EmbeddedService
from simfarm.client.embedded_auth import RedisUsers
from simfarm.common.settings import Settings
from tests.conftest import RedisServer
from tests.helpers import (
    ROOT,
    free_port,
    start_gateway,
    start_worker,
    stop_process,
    wait_for,
    wait_until,
)

PREFIX = "atk:"
#: The test account cannot run the venv's interpreter (under /root): jobs and the other
#: account's client use the system's Python and its standard library only.
SYSTEM_PYTHON = "/usr/bin/python3"

#: A job that tries what the probe's job did: read its worker's environment and memory,
#: find any process environment holding simfarm's Redis URL, talk to Redis without a
#: password. It prints one JSON line of what it got.
INTRUDER = r"""
import json, os, socket, sys
out = {"uid": os.getuid(), "own": sorted(k for k in os.environ
                                          if k.startswith("SIMFARM_") and k != "SIMFARM_JOB_ID")}
ppid = os.getppid()
if os.stat(f"/proc/{ppid}").st_uid == os.getuid():  # the exit-note writer, the job's own:
    ppid = int(open(f"/proc/{ppid}/stat").read().rsplit(")", 1)[1].split()[1])  # its worker
for what in ("environ", "mem"):
    try:
        with open(f"/proc/{ppid}/{what}", "rb") as f:
            f.read(64)
        out[what] = "read"
    except OSError as exc:
        out[what] = type(exc).__name__
leaks = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if b"SIMFARM_REDIS_URL" in f.read():
                leaks.append(pid)
    except OSError:
        pass
out["leaks"] = leaks
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")
out["redis"] = s.recv(200).decode(errors="replace").split("\r\n")[0]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def locked_farm(settings: Settings, job_account: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, RedisServer]]:
    folder = tmp_path_factory.mktemp("locked")
    users = RedisUsers()
    acl = users.write_acl(folder, PREFIX)
    server = RedisServer(folder / "redis", password=users.passwords["default"],
                         extra_args=("--aclfile", str(acl)))
    server.start()
    base = f"redis://127.0.0.1:{server.port}/0"
    farm = settings.model_copy(update={
        "redis_url": users.url(base, "gateway"), "key_prefix": PREFIX,
        "gateway_port": free_port(), "node_name": "locked-node",
        "state_dir": folder / "state", "job_user": job_account})
    (folder / "state").mkdir()
    gateway = start_gateway(farm, folder / "gateway.log")
    node = farm.model_copy(update={"redis_url": users.url(base, "dispatcher")})
    worker = start_worker(node, folder / "worker.log")
    http = httpx.Client(base_url=f"http://127.0.0.1:{farm.gateway_port}", timeout=30)

    def _alive() -> bool:
        if worker.poll() is not None:
            raise RuntimeError((folder / "worker.log").read_text()[-3000:])
        return any(w["name"] == "locked-node" and w["alive"]
                   for w in http.get("/api/v1/workers").json()["workers"])

    wait_until(_alive, 60, "worker of the locked farm")
    farm.__dict__["_users"] = users  # the test reads the role passwords
    yield farm, server
    http.close()
    stop_process(worker)
    stop_process(gateway)
    server.stop()


def _run(http: httpx.Client, argv: list[str], **extra: Any) -> tuple[dict[str, Any], list[str]]:
    created = http.post("/api/v1/jobs", json={"argv": argv, **extra})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    job = wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json(),
                   lambda j: j["state"] in ("completed", "failed", "cancelled"), 60,
                   f"job {job_id} to end")
    events = http.get(f"/api/v1/jobs/{job_id}/events").json()["events"]
    return job, [e["data"]["line"] for e in events if e["type"] == "log"]


def test_a_job_cannot_read_its_worker_or_reach_redis(
    locked_farm: tuple[Settings, RedisServer], job_account: str
) -> None:
    farm, server = locked_farm
    with httpx.Client(base_url=f"http://127.0.0.1:{farm.gateway_port}", timeout=30) as http:
        job, lines = _run(http, [SYSTEM_PYTHON, "-c", INTRUDER, str(server.port)],
                          env={"SECRET_OF_ALICE": "s3cret"})
    assert job["state"] == "completed", (job, lines)
    seen = json.loads(lines[-1])
    assert seen["uid"] == pwd.getpwnam(job_account).pw_uid  # not the worker's (root)
    assert seen["environ"] == "PermissionError" and seen["mem"] == "PermissionError"
    assert seen["leaks"] == []  # no process environment with the Redis URL is readable
    assert seen["own"] == []  # none of simfarm's settings in its own environment
    assert seen["redis"].startswith("-NOAUTH"), seen["redis"]


def test_a_jobs_environment_is_built_not_inherited(
    locked_farm: tuple[Settings, RedisServer], job_account: str
) -> None:
    farm, _ = locked_farm
    with httpx.Client(base_url=f"http://127.0.0.1:{farm.gateway_port}", timeout=30) as http:
        job, lines = _run(http, ["env"], env={"MY_SETTING": "1"})
    names = {line.split("=", 1)[0] for line in lines if "=" in line}
    assert job["state"] == "completed"
    assert {"PATH", "HOME", "USER", "SIMFARM_JOB_ID", "MY_SETTING"} <= names
    # the worker has PYTHONPATH (tests/helpers.child_env) and simfarm's settings: not passed
    assert not {n for n in names if n.startswith("SIMFARM_") and n != "SIMFARM_JOB_ID"}
    assert "PYTHONPATH" not in names
    assert f"USER={job_account}" in lines


def test_redis_roles_get_the_least_they_need(locked_farm: tuple[Settings, RedisServer]) -> None:
    farm, server = locked_farm
    users: RedisUsers = farm.__dict__["_users"]
    base = f"redis://127.0.0.1:{server.port}/0"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(base).ping()
    gateway = redis.Redis.from_url(users.url(base, "gateway"))
    worker = redis.Redis.from_url(users.url(base, "worker"))
    dispatcher = redis.Redis.from_url(users.url(base, "dispatcher"))
    for role in (gateway, worker, dispatcher):
        for command in (("CONFIG", "GET", "*"), ("FLUSHALL",), ("KEYS", "*"), ("ACL", "LIST")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                role.execute_command(*command)
        with pytest.raises(redis.exceptions.NoPermissionError):
            role.get("other-app:secret")  # nothing outside simfarm's keys
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.llen("simfarm.node.locked-node")  # the gateway never touches Celery
    for write in (lambda r: r.xadd(f"{PREFIX}audit", {"forged": "1"}),
                  lambda r: r.set(f"{PREFIX}idem:x", "job"),
                  lambda r: r.set(f"{PREFIX}dispatch:lock", "1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            write(worker)
    wait_until(lambda: dispatcher.get(f"{PREFIX}dispatch:fence") is not None, 20,
               "the dispatcher to lead")  # with its own user


# ---------------------------------------------------------------- the embedded service


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedService]:
    state = tmp_path_factory.mktemp("embedded")
    service = EmbeddedService(Settings(redis_url=None, state_dir=state), gateway_port=free_port())
    service.start()
    yield service
    service.stop()


def test_embedded_service_needs_its_local_token_which_clients_find(
    embedded: EmbeddedService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simfarm.client import Client

    state = embedded.state_dir / "embedded.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE((embedded.state_dir / "redis" / "users.acl").stat().st_mode) == 0o600
    for method, path in (("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"), ("GET", "/jobs")):
        response = httpx.request(method, embedded.url + path, json={"argv": ["id"]}, timeout=30)
        assert response.status_code == 401, (method, path, response.text)
    port = int(embedded.redis_url.rsplit(":", 1)[1].split("/")[0])  # type: ignore[union-attr]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(embedded.state_dir))
    monkeypatch.delenv("SIMFARM_TOKEN", raising=False)
    monkeypatch.delenv("SIMFARM_URL", raising=False)
    with Client() as client:  # finds the service and its token in embedded.json
        assert client.url == embedded.url
        job = client.submit(["true"])
        assert client.get(job.id).id == job.id
    cli = subprocess.run([sys.executable, "-m", "simfarm.client.cli", "list"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert cli.returncode == 0 and job.id in cli.stdout, cli.stderr


def test_dashboard_login_url_works_once(embedded: EmbeddedService) -> None:
    first = httpx.get(embedded.login_url, timeout=30)
    assert first.status_code == 200 and embedded.local_token.token in first.text
    assert first.headers["Cache-Control"] == "no-store"
    assert first.headers["Referrer-Policy"] == "no-referrer"
    again = httpx.get(embedded.login_url, timeout=30)
    assert again.status_code == 403 and embedded.local_token.token not in again.text
    cookie = {"simfarm_token": embedded.local_token.token}
    assert httpx.get(embedded.url + "/", cookies=cookie, timeout=30).status_code == 200


def _as_account(account: str, code: str, *args: str) -> dict[str, Any]:
    entry = pwd.getpwnam(account)
    done = subprocess.run([SYSTEM_PYTHON, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
                          env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


#: Another local user's attempt: submit without a token, steal the token file, talk to
#: the embedded Redis.
OTHER_USER = r"""
import json, socket, sys, urllib.error, urllib.request
url, state, redis_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = urllib.request.Request(url + "/api/v1/jobs", data=b'{"argv": ["id"]}',
                                 headers={"Content-Type": "application/json"})
try:
    out = {"submit": urllib.request.urlopen(request, timeout=30).status}
except urllib.error.HTTPError as exc:
    out = {"submit": exc.code}
try:
    open(state).read()
    out["state"] = "read"
except OSError as exc:
    out["state"] = type(exc).__name__
if redis_port:
    s = socket.create_connection(("127.0.0.1", redis_port), timeout=5)
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    out["redis"] = s.recv(100).decode().split("\r\n")[0]
print(json.dumps(out))
"""


def test_another_local_account_cannot_use_the_embedded_farm(
    embedded: EmbeddedService, job_account: str
) -> None:
    port = embedded.redis_url.rsplit(":", 1)[1].split("/")[0]  # type: ignore[union-attr]
    seen = _as_account(job_account, OTHER_USER, embedded.url,
                       str(embedded.state_dir / "embedded.json"), port)
    assert seen["submit"] == 401
    assert seen["state"] == "PermissionError"
    assert seen["redis"].startswith("-NOAUTH")


def test_open_mode_serves_only_its_own_account(gateway: str, job_account: str) -> None:
    seen = _as_account(job_account, OTHER_USER, gateway, "/nonexistent", "0")
    assert seen["submit"] == 403
    assert httpx.get(gateway + "/api/v1/jobs", timeout=30).status_code == 200  # the owner


# ---------------------------------------------------------------- web pages


def test_dns_rebinding_is_refused(http: httpx.Client) -> None:
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example"):
        response = http.post("/api/v1/jobs", json={"argv": ["id"]}, headers={"Host": host})
        assert response.status_code == 400, (host, response.text)
        assert response.json()["fields"][0]["field"] == "Host"
        assert http.get("/api/v1/jobs", headers={"Host": host}).status_code == 400
    assert http.get("/api/v1/health", headers={"Host": "localhost:1"}).status_code == 200


def test_cross_origin_requests_cannot_change_anything(http: httpx.Client) -> None:
    first = http.post("/api/v1/jobs", json={"argv": ["sleep", "30"]}).json()["id"]
    job_id = http.post("/api/v1/jobs", json={"argv": ["true"], "depends_on": {
        "after_ok": [first]}}).json()["id"]  # pending while the first one has not ended
    evil = {"Origin": "http://evil.example"}
    assert http.post("/api/v1/jobs", json={"argv": ["id"]}, headers=evil).status_code == 403
    assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=evil).status_code == 403
    # what an HTML form can send cross-site without asking: refused even without Origin
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for path in (f"/api/v1/jobs/{job_id}/cancel", f"/api/cancel/{job_id}"):
        for content_type in ("application/x-www-form-urlencoded", "text/plain",
                             "multipart/form-data; boundary=x"):
            response = http.post(path, content=b"a=1", headers={"Content-Type": content_type})
            assert response.status_code == 415, (path, content_type, response.text)
    assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers={
        "Sec-Fetch-Site": "cross-site", **form}).status_code in (403, 415)
    assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "pending"
    same = {"Origin": str(http.base_url).rstrip("/")}
    assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=same).status_code == 200
    # the first job may have started meanwhile: a running job's cancel is accepted (202)
    assert http.post(f"/api/v1/jobs/{first}/cancel", headers=same).status_code in (200, 202)


def test_cross_origin_websocket_is_refused(gateway: str) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = gateway.replace("http://", "ws://") + "/api/v1/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="http://evil.example", open_timeout=10)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    with connect(url, origin=gateway, open_timeout=10) as ws:  # type: ignore[arg-type]
        ws.send(json.dumps({"op": "subscribe"}))
        assert json.loads(ws.recv(timeout=10))["op"] == "subscribed"


def test_answers_carry_security_headers(http: httpx.Client) -> None:
    for path in ("/", "/api/v1/health", "/api/v1/jobs", "/api/v1/docs"):
        headers = http.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["Referrer-Policy"] == "no-referrer", path


# ---------------------------------------------------------------- slow clients


def test_slow_clients_do_not_stop_the_gateway(gateway: str, http: httpx.Client) -> None:
    """300 connections dripping headers one byte a second and 300 silent ones (64
    threads of the old gthread gateway were enough to stop it): health, submit and a
    WebSocket still answer, each within a few seconds."""
    from websockets.sync.client import connect

    from tests.slowloris import Slowloris

    port = int(gateway.rsplit(":", 1)[1])
    with Slowloris(port, slow=300, idle=300) as attack, \
            httpx.Client(base_url=gateway, timeout=5) as fresh:
        assert attack.open_connections >= 590
        for _ in range(3):
            assert fresh.get("/api/v1/health").status_code == 200
            created = fresh.post("/api/v1/jobs", json={"argv": ["sleep", "30"], "priority": 0})
            assert created.status_code == 201, created.text
            # pending (200) or already running (202): either way the cancel is taken
            cancel = fresh.post(f"/api/v1/jobs/{created.json()['id']}/cancel")
            assert cancel.status_code in (200, 202), cancel.text
            with connect(gateway.replace("http://", "ws://") + "/api/v1/ws",
                         open_timeout=5) as ws:
                ws.send(json.dumps({"op": "subscribe", "types": ["state"]}))
                assert json.loads(ws.recv(timeout=5))["op"] == "subscribed"
        assert http.get("/").status_code == 200  # the dashboard too


# ---------------------------------------------------------------- worker tokens

WORKER_TOKEN, ALICE_TOKEN = "worker-token-0123456789abcdef", "alice-token-abcdef0123456789"


@pytest.fixture(scope="module")
def token_gateway(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from simfarm.common.tokens import TokenEntry, hash_token

    farm = settings.model_copy(update={
        "gateway_port": free_port(), "key_prefix": "tok:", "upload_quota_bytes": 4096,
        "blob_dir": tmp_path_factory.mktemp("tok-blobs"),
        "auth_tokens": [TokenEntry(user="alice", hash=hash_token(ALICE_TOKEN)),
                        TokenEntry(user="node-a", hash=hash_token(WORKER_TOKEN), worker=True)]})
    proc = start_gateway(farm, tmp_path_factory.mktemp("tok") / "gateway.log")
    yield f"http://127.0.0.1:{farm.gateway_port}"
    stop_process(proc)


def test_worker_tokens_only_move_files(token_gateway: str) -> None:
    alice = httpx.Client(base_url=token_gateway, timeout=30,
                         headers={"Authorization": f"Bearer {ALICE_TOKEN}"})
    worker = httpx.Client(base_url=token_gateway, timeout=30,
                          headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
    with alice, worker:
        job_id = alice.post("/api/v1/jobs", json={"argv": ["true"]}).json()["id"]
        for method, path in (("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"),
                             ("GET", f"/api/v1/jobs/{job_id}"), ("GET", "/api/v1/me"),
                             ("POST", f"/api/v1/jobs/{job_id}/cancel"),
                             ("GET", "/api/jobs"), ("GET", "/api/v1/audit")):
            response = worker.request(method, path, json={"argv": ["id"]})
            assert response.status_code == 403, (method, path, response.text)
        missing = "0" * 64
        assert worker.get(f"/api/v1/blobs/{missing}").status_code == 404  # its routes work
        put = worker.put(f"/api/v1/blobs/{missing}", content=b"x")
        assert put.status_code == 422  # the bytes do not hash to the name
        # results only for a running job: alice's job is pending (no worker runs here)
        results = worker.put(f"/api/v1/jobs/{job_id}/results",
                             json={"sha256": missing, "size": 1, "files": [], "partial": False})
        assert results.status_code == 404
        assert alice.get(f"/api/v1/jobs/{job_id}").json()["state"] == "pending"


def test_every_redis_key_is_given_to_the_roles_that_need_it() -> None:
    """A key added to the key map (store/keys.py) must be listed in redis_acl.py, or
    workers get NOPERM on it at run time."""
    import fnmatch
    import inspect

    from simfarm.common import redis_acl
    from simfarm.common.store.keys import Keys

    keys = Keys("P:")
    names = []
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            names.append(getattr(keys, name))
        elif inspect.isfunction(member):
            arity = len(inspect.signature(member).parameters) - 1
            names.append(member(keys, *["x"] * arity))
    classified = [*redis_acl.WORKER_KEYS, *redis_acl.DISPATCHER_KEYS, *redis_acl.GATEWAY_KEYS]
    unclassified = [n for n in names if isinstance(n, str) and n.startswith("P:")
                    and not any(fnmatch.fnmatchcase(n[2:], p) for p in classified)]
    assert len(names) > 30 and unclassified == [], unclassified


# ---------------------------------------------------------------- low findings


def test_priority_route_needs_an_object_with_a_priority(http: httpx.Client) -> None:
    first = http.post("/api/v1/jobs", json={"argv": ["sleep", "30"]}).json()["id"]
    job_id = http.post("/api/v1/jobs", json={"argv": ["true"], "priority": 7, "depends_on": {
        "after_ok": [first]}}).json()["id"]
    for body in ([1, 2], "5", None, {"priority": [5]}, {"priority": True}, {}):
        response = http.post(f"/jobs/{job_id}/priority", json=body)
        assert response.status_code == 422, (body, response.text)  # was 500 for a list
    assert http.post(f"/jobs/{job_id}/priority").status_code == 422  # no body: was set to 0
    assert http.get(f"/api/v1/jobs/{job_id}").json()["priority"] == 7
    assert http.post(f"/jobs/{job_id}/priority", json={"priority": 3}).status_code == 200
    http.post(f"/api/v1/jobs/{first}/cancel")


def test_405_names_the_allowed_methods(http: httpx.Client) -> None:
    response = http.delete("/api/v1/jobs")
    assert response.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_a_sweep_template_cannot_name_another_owner(http: httpx.Client) -> None:
    response = http.post("/api/v1/sweeps", json={
        "template": {"argv": ["echo", "{x}"], "owner": "victim"}, "grid": {"x": [1, 2]}})
    assert response.status_code == 422, response.text
    assert "owner" in response.text


def test_archives_with_links_are_refused_where_tarfile_can_be_bypassed(tmp_path: Path) -> None:
    import io
    import tarfile

    from simfarm.common.archive import data_filter_is_fixed, extract

    def archive(*members: tarfile.TarInfo) -> io.BytesIO:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for member in members:
                tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
        out.seek(0)
        return out

    plain = tarfile.TarInfo("proj/a.aedt")
    plain.size = 1
    assert extract(archive(plain), tmp_path / "ok") == ["proj/a.aedt"]
    outside = tarfile.TarInfo("proj/escape")
    outside.type, outside.linkname = tarfile.SYMTYPE, "/etc/shadow"
    inside = tarfile.TarInfo("proj/alias")
    inside.type, inside.linkname = tarfile.SYMTYPE, "a.aedt"
    for bad in (outside, tarfile.TarInfo("../../etc/cron.d/x")):
        with pytest.raises(tarfile.TarError):
            extract(archive(bad), tmp_path / "bad")
    if data_filter_is_fixed():
        extract(archive(plain, inside), tmp_path / "links")
    else:  # this Python's data filter has known bypasses: no links at all
        with pytest.raises(tarfile.FilterError, match="links"):
            extract(archive(plain, inside), tmp_path / "links")
    assert data_filter_is_fixed((3, 11, 13)) and not data_filter_is_fixed((3, 11, 7))
    assert data_filter_is_fixed((3, 14, 0)) and not data_filter_is_fixed((3, 12, 10))


# ---------------------------------------------------------------- bounded uploads


def test_uploads_count_against_a_per_user_quota(token_gateway: str) -> None:
    import hashlib

    alice = httpx.Client(base_url=token_gateway, timeout=30,
                         headers={"Authorization": f"Bearer {ALICE_TOKEN}"})
    with alice:
        first = os.urandom(3000)
        sha = hashlib.sha256(first).hexdigest()
        assert alice.put(f"/api/v1/blobs/{sha}", content=first).status_code == 201
        second = os.urandom(3000)  # 6000 bytes > the 4096-byte quota
        refused = alice.put(f"/api/v1/blobs/{hashlib.sha256(second).hexdigest()}",
                            content=second)
        assert refused.status_code == 507 and "quota" in refused.json()["detail"]
        # a job that needs no upload is still accepted
        assert alice.post("/api/v1/jobs", json={"argv": ["true"]}).status_code == 201


@pytest.fixture(scope="module")
def full_disk_gateway(settings: Settings,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    farm = settings.model_copy(update={
        "gateway_port": free_port(), "key_prefix": "full:",
        "blob_dir": tmp_path_factory.mktemp("full-blobs"), "blob_min_free_bytes": 1 << 60})
    proc = start_gateway(farm, tmp_path_factory.mktemp("full") / "gateway.log")
    yield f"http://127.0.0.1:{farm.gateway_port}"
    stop_process(proc)


def test_a_full_blob_disk_refuses_uploads_not_submits(full_disk_gateway: str) -> None:
    import hashlib

    with httpx.Client(base_url=full_disk_gateway, timeout=30) as http:
        body = b"project"
        refused = http.put(f"/api/v1/blobs/{hashlib.sha256(body).hexdigest()}", content=body)
        assert refused.status_code == 507, refused.text
        assert "nearly full" in refused.json()["detail"]
        assert http.post("/api/v1/jobs", json={"argv": ["true"]}).status_code == 201


def test_interrupted_uploads_expire(tmp_path: Path) -> None:
    import io
    import time

    from simfarm.gateway.blobstore import BlobError, FolderBlobStore

    store = FolderBlobStore(tmp_path)
    sha = "a" * 64
    with pytest.raises(BlobError):  # the connection broke after 4 of 10 bytes
        store.receive(sha, io.BytesIO(b"part"), 0, 1 << 20, length=10, user="alice")
    assert store.partial_size(sha, "alice") == 4
    assert store.partial_size(sha, "bob") == 0  # bob cannot resume alice's upload
    assert store.expire_parts(time.time() - 3600) == 0  # recent: kept for resuming
    assert store.expire_parts(time.time() + 1) == 1
    assert store.partial_size(sha, "alice") == 0

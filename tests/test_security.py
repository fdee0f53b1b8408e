"""Security of the gateway over real HTTP: tokens, ownership, paths, hostile bodies.

A second real gateway (gunicorn) runs in token mode on the session's Redis under its own
key prefix, with three users (alice, bob with a PBKDF2-hashed token, admin root) and an
allowed root folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simfarm.common.settings import Settings
from simfarm.common.tokens import TokenEntry, hash_token
from tests.helpers import ROOT, child_env, free_port, start_gateway, stop_process, wait_for

ALICE, BOB, ROOT_TOKEN = "alice-token-0123456789", "bob-chosen-passphrase", "root-token-9876543210"
OK = {"argv": ["true"]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("allowed")
    (root / "proj").mkdir()
    return root


@pytest.fixture(scope="module")
def secure_settings(settings: Settings, data_root: Path) -> Settings:
    return settings.model_copy(
        update={
            "gateway_port": free_port(),
            "key_prefix": "sec:",
            "allowed_roots": [str(data_root)],
            "auth_tokens": [
                TokenEntry(user="alice", hash=hash_token(ALICE)),
                TokenEntry(user="bob", hash=hash_token(BOB, slow=True, iterations=50_000)),
                TokenEntry(user="root", hash=hash_token(ROOT_TOKEN), admin=True),
            ],
        }
    )


@pytest.fixture(scope="module")
def secure_url(secure_settings: Settings) -> Iterator[str]:
    proc = start_gateway(secure_settings, secure_settings.state_dir / "secure-gateway.log")
    yield f"http://127.0.0.1:{secure_settings.gateway_port}"
    stop_process(proc)


def client(url: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def alice(secure_url: str) -> Iterator[httpx.Client]:
    with client(secure_url, ALICE) as c:
        yield c


@pytest.fixture(scope="module")
def bob(secure_url: str) -> Iterator[httpx.Client]:
    with client(secure_url, BOB) as c:
        yield c


@pytest.fixture(scope="module")
def admin(secure_url: str) -> Iterator[httpx.Client]:
    with client(secure_url, ROOT_TOKEN) as c:
        yield c


def submit(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    response = http.post("/api/v1/jobs", json={**OK, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {ALICE}"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["none", "wrong", "basic-scheme", "empty", "huge"],
)
def test_requests_without_a_valid_token_get_401(secure_url: str, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"),
                         ("GET", "/api/v1/jobs/abc"), ("GET", "/api/v1/me"),
                         ("GET", "/jobs"), ("POST", "/jobs/submit"), ("GET", "/api/v1/nowhere")]:
        response = httpx.request(method, secure_url + path, headers=headers, json=OK, timeout=30)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized"


def test_health_is_public_and_me_names_the_caller(
    secure_url: str, alice: httpx.Client, bob: httpx.Client, admin: httpx.Client
) -> None:
    assert httpx.get(secure_url + "/api/v1/health", timeout=30).status_code == 200
    assert alice.get("/api/v1/me").json() == {"user": "alice", "admin": False,
                                              "authenticated": True}
    assert bob.get("/api/v1/me").json()["user"] == "bob"  # PBKDF2-hashed token
    assert admin.get("/api/v1/me").json()["admin"] is True


# ---------------------------------------------------------------- ownership


def test_jobs_belong_to_the_token_user_and_stay_private(
    alice: httpx.Client, bob: httpx.Client, admin: httpx.Client
) -> None:
    job = submit(alice, argv=["sleep", "60"])
    assert job["owner"] == "alice"
    job_id = job["id"]
    for method, path in [("GET", f"/api/v1/jobs/{job_id}"),
                         ("GET", f"/api/v1/jobs/{job_id}/events"),
                         ("POST", f"/api/v1/jobs/{job_id}/cancel"),
                         ("POST", f"/jobs/{job_id}/cancel"),
                         ("POST", f"/api/cancel/{job_id}"),
                         ("POST", f"/jobs/{job_id}/priority"),
                         ("GET", f"/api/jobs/{job_id}/log")]:
        response = bob.request(method, path, json={"priority": 1})
        assert response.status_code == 404, (method, path, response.text)
    assert alice.get(f"/api/v1/jobs/{job_id}").json()["state"] == "pending"
    assert job_id not in {j["id"] for j in bob.get("/api/v1/jobs").json()["jobs"]}
    assert job_id in {j["id"] for j in alice.get("/api/v1/jobs").json()["jobs"]}
    asked = {"ids": [job_id]}
    assert bob.post("/api/v1/jobs/query", json=asked).json() == {"jobs": [], "missing": [job_id]}
    assert [j["id"] for j in alice.post("/api/v1/jobs/query", json=asked).json()["jobs"]] == [
        job_id]
    bob_pending = bob.get("/api/v1/jobs", params={"state": "pending", "limit": 1000}).json()
    assert job_id not in {j["id"] for j in bob_pending["jobs"]}
    # The admin sees everyone's jobs, can filter by owner and cancels alice's job.
    assert job_id in {j["id"] for j in admin.get("/api/v1/jobs").json()["jobs"]}
    only_alice = admin.get("/api/v1/jobs", params={"owner": "alice"}).json()["jobs"]
    assert only_alice and {j["owner"] for j in only_alice} == {"alice"}
    assert admin.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    assert alice.get(f"/api/v1/jobs/{job_id}").json()["state"] == "cancelled"


def test_users_cannot_act_as_someone_else(
    alice: httpx.Client, bob: httpx.Client, admin: httpx.Client
) -> None:
    response = alice.post("/api/v1/jobs", json={**OK, "owner": "bob"})
    assert response.status_code == 403 and response.json()["fields"][0]["field"] == "owner"
    assert alice.get("/api/v1/jobs", params={"owner": "bob"}).status_code == 403
    assert submit(alice, owner="alice")["owner"] == "alice"
    assert submit(admin, owner="bob")["owner"] == "bob"  # admins submit on behalf of others


def test_idempotency_keys_are_per_user(alice: httpx.Client, bob: httpx.Client) -> None:
    headers = {"Idempotency-Key": "same-key-for-both"}
    first = alice.post("/api/v1/jobs", json=OK, headers=headers)
    other = bob.post("/api/v1/jobs", json=OK, headers=headers)
    again = alice.post("/api/v1/jobs", json=OK, headers=headers)
    assert (first.status_code, other.status_code, again.status_code) == (201, 201, 200)
    assert other.json()["owner"] == "bob" and other.json()["id"] != first.json()["id"]
    assert again.json()["id"] == first.json()["id"]


def test_pyedb_routes_are_scoped_to_the_token_user(
    alice: httpx.Client, bob: httpx.Client, admin: httpx.Client
) -> None:
    job = submit(alice, argv=["sleep", "60"], name="not-hfss")
    assert bob.get("/api/me").json() == {"username": "bob"}
    assert all(j["user"] != "alice" for j in bob.get("/api/jobs").json())
    admin.post(f"/api/v1/jobs/{job['id']}/cancel")


def test_a_pyedb_jobid_another_user_has_reveals_nothing(
    alice: httpx.Client, bob: httpx.Client, admin: httpx.Client, data_root: Path
) -> None:
    """With tokens a PyEDB jobid is the user's own: two users sending the same one each
    get their own job, and neither answer differs from what a fresh id would get (the
    old answer, ``<jobid>-2``, told bob that a job of that id existed)."""
    project = data_root / "proj" / "board.aedt"
    project.parent.mkdir(parents=True, exist_ok=True)
    project.write_text("$begin 'Setup1'\n$end 'Setup1'\n")
    config = {"project_path": str(project), "jobid": "shared_run"}
    ids = []
    for user, client in (("alice", alice), ("bob", bob)):
        answer = client.post("/jobs/submit", json={"config": config})
        assert answer.status_code == 200, answer.text
        assert answer.json()["job_id"] == f"{user}_shared_run"
        ids.append(answer.json()["job_id"])
    assert bob.get(f"/api/jobs/{ids[0]}").status_code == 404
    assert [j["id"] for j in bob.get("/api/jobs").json() if "shared_run" in j["id"]
            ] == ["bob_shared_run"]
    long = alice.post("/jobs/submit", json={"config": {**config, "jobid": "x" * 117}})
    assert long.status_code == 422 and "alice_" in long.json()["detail"], long.text
    assert long.json()["fields"][0]["field"] == "config.jobid"
    for job_id in ids:
        admin.post(f"/api/v1/jobs/{job_id}/cancel")


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "cwd, reason",
    [
        ("relative/dir", "absolute"),
        ("{root}/proj/../../etc", "traversal"),
        ("{root}/../outside", "traversal"),
        ("/etc", "outside"),
        ("{root}-evil/proj", "outside"),
        ("{root}/proj\n/etc", "control"),
    ],
)
def test_job_paths_outside_the_allowed_roots_are_refused(
    alice: httpx.Client, data_root: Path, cwd: str, reason: str
) -> None:
    response = alice.post("/api/v1/jobs", json={**OK, "cwd": cwd.format(root=data_root)})
    assert response.status_code == 422, response.text
    field = response.json()["fields"][0]
    assert field["field"] == "cwd" and reason in field["reason"]


def test_job_paths_inside_the_allowed_roots_are_accepted(
    alice: httpx.Client, data_root: Path
) -> None:
    job = submit(alice, cwd=f"{data_root}//proj/./")
    assert job["spec"]["cwd"] == f"{data_root}//proj/./"  # stored as sent, checked normalised


def test_hfss_project_paths_are_checked_on_both_apis(
    alice: httpx.Client, data_root: Path
) -> None:
    hfss = {"project_path": f"{data_root}/../secret.aedt", "jobid": "SEC_1"}
    response = alice.post("/api/v1/jobs", json={"kind": "hfss", "hfss": hfss})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "hfss.project_path"
    response = alice.post("/jobs/submit", json={"config": {"project_path": "/etc/x.aedt"}})
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "env, why",
    [
        ({"LD_PRELOAD": "/tmp/evil.so"}, "may not be set"),
        ({"ld_audit": "/tmp/evil.so"}, "may not be set"),
        ({"DYLD_INSERT_LIBRARIES": "/tmp/evil.dylib"}, "may not be set"),
        ({"A=B": "x"}, "not valid"),
        ({"MY_PATH": "a\x00b"}, "invalid value"),
        # issue 20: loader, shell and interpreter variables beyond LD_PRELOAD
        ({"LD_LIBRARY_PATH": "/tmp/evil"}, "may not be set"),
        ({"PYTHONPATH": "/tmp/evil"}, "may not be set"),
        ({"BASH_ENV": "/tmp/evil.sh"}, "may not be set"),
        ({"PATH": "/tmp/evil:/usr/bin"}, "may not be set"),
        ({"BASH_FUNC_ls%%": "() { id; }"}, "not valid"),
        ({"NODE_OPTIONS": "--require /tmp/evil.js"}, "may not be set"),
        ({"PERL5OPT": "-Mevil"}, "may not be set"),
    ],
)
def test_env_injection_is_refused(alice: httpx.Client, env: dict[str, str], why: str) -> None:
    response = alice.post("/api/v1/jobs", json={**OK, "env": env})
    assert response.status_code == 422
    assert why in response.json()["detail"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"argv": ["\\ud800"]}',  # lone surrogate: valid JSON, invalid Unicode
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to break recursive parsers
        b'{"argv": ["true"], "argv": 5}',  # duplicate key
        b'{"argv": ["true"], "priority": 1e999}',
        b'{"argv": ["true"], "priority": NaN}',
    ],
    ids=["surrogate", "deep-nesting", "duplicate-key", "huge-number", "nan"],
)
def test_hostile_json_is_a_4xx(alice: httpx.Client, content: bytes) -> None:
    response = alice.post(
        "/api/v1/jobs", content=content, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"error", "detail", "fields"}


def test_chunked_oversized_body_is_413(alice: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"argv": ["echo", "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"]}'

    response = alice.post(
        "/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text


def test_gateway_refuses_to_listen_publicly_without_tokens(settings: Settings) -> None:
    exposed = settings.model_copy(update={"gateway_host": "0.0.0.0", "gateway_port": free_port()})
    result = subprocess.run(
        [sys.executable, "-m", "simfarm.gateway.server"],
        env=child_env(exposed), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "refusing to start" in result.stderr and "hash-token" in result.stderr


def test_cli_passes_simfarm_token(secure_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update({"SIMFARM_URL": secure_url, "PYTHONPATH": str(ROOT)})
    argv = [sys.executable, "-m", "simfarm.client.cli", "list"]
    denied = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "401" in denied.stderr
    env["SIMFARM_TOKEN"] = ALICE
    allowed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert allowed.returncode == 0, allowed.stderr


# ---------------------------------------------------------------- what a job really gets


def test_argv_reaches_the_program_literally_and_secrets_stay_out(farm: httpx.Client) -> None:
    hostile = ["; touch /tmp/simfarm-pwned #", "$(id)", "`id`", "a'b\"c", "|| true", "*"]
    script = ("import json, os, sys; print(json.dumps(sys.argv[1:])); "
              "print(json.dumps(sorted(k for k in os.environ if k.startswith('SIMFARM_'))))")
    response = farm.post("/api/v1/jobs", json={"argv": [sys.executable, "-c", script, *hostile]})
    job_id = response.json()["id"]
    done = wait_for(lambda: farm.get(f"/api/v1/jobs/{job_id}").json(),
                    lambda j: j["state"] in ("completed", "failed"), 30, "the job")
    assert done["state"] == "completed", done
    events = farm.get(f"/api/v1/jobs/{job_id}/events").json()["events"]
    lines = [e["data"]["line"] for e in events if e["type"] == "log"]
    assert json.loads(lines[0]) == hostile
    assert json.loads(lines[1]) == ["SIMFARM_JOB_ID"]  # no Redis URL, no tokens
    assert not Path("/tmp/simfarm-pwned").exists()


# ---------------------------------------------------------------- every other surface


def test_websocket_needs_a_token_and_shows_only_own_jobs(
    secure_url: str, alice: httpx.Client, bob: httpx.Client
) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws_url = secure_url.replace("http://", "ws://") + "/api/v1/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=10).close()
    assert refused.value.response.status_code == 401
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {BOB}"},
                 open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe"}))
        assert json.loads(ws.recv(timeout=10))["op"] == "subscribed"
        hidden = submit(alice, name="alice-secret")["id"]
        mine = submit(bob, name="bob-own")["id"]
        seen: list[str] = []
        while mine not in seen:
            message = json.loads(ws.recv(timeout=10))
            if message["op"] == "event":
                seen.append(message["job_id"])
        assert hidden not in seen
    with connect(f"{ws_url}?access_token={BOB}", open_timeout=10) as ws:  # browsers
        ws.send(json.dumps({"op": "subscribe", "jobs": [hidden, mine], "snapshot": True,
                            "since": "0-0"}))
        subscribed = json.loads(ws.recv(timeout=10))
        assert subscribed["jobs"] == {hidden: None, mine: "pending"}
        replayed = []
        while True:
            message = json.loads(ws.recv(timeout=10))
            if message["op"] == "live":
                break
            replayed.append(message.get("job_id"))
        assert replayed and set(replayed) == {mine}


def test_dashboard_pages_sign_in_and_scope(
    secure_url: str, alice: httpx.Client
) -> None:
    job = submit(alice, name="alice-dash")
    browser = {"Accept": "text/html,application/xhtml+xml"}
    page = httpx.get(secure_url + "/", headers=browser, timeout=30)
    assert page.status_code == 401 and "API token" in page.text
    assert httpx.get(secure_url + "/ui/assets/dashboard.js", timeout=30).status_code == 200
    as_bob = httpx.get(secure_url + "/", headers=browser, cookies={"simfarm_token": BOB},
                       timeout=30)
    assert as_bob.status_code == 200 and job["id"] not in as_bob.text
    as_alice = httpx.get(secure_url + "/", headers=browser, cookies={"simfarm_token": ALICE},
                         timeout=30)
    assert job["id"] in as_alice.text
    other = httpx.get(f"{secure_url}/ui/jobs/{job['id']}", headers=browser,
                      cookies={"simfarm_token": BOB}, timeout=30)
    assert other.status_code == 404
    # The cookie never authorises a change (no cross-site form can use it).
    post = httpx.post(f"{secure_url}/api/v1/jobs/{job['id']}/cancel",
                      cookies={"simfarm_token": ALICE}, timeout=30)
    assert post.status_code == 401


def test_sweeps_results_and_dependencies_are_scoped(
    alice: httpx.Client, bob: httpx.Client, admin: httpx.Client
) -> None:
    response = alice.post("/api/v1/sweeps", json={
        "template": {"argv": ["echo", "{x}"]}, "variations": [{"x": 1}, {"x": 2}]})
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert sweep["owner"] == "alice"
    assert {alice.get(f"/api/v1/jobs/{c['job_id']}").json()["owner"]
            for c in sweep["children"]} == {"alice"}
    assert bob.get(f"/api/v1/sweeps/{sweep['id']}").status_code == 404
    assert bob.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 404
    assert sweep["id"] not in {s["id"] for s in bob.get("/api/v1/sweeps").json()["sweeps"]}
    child = sweep["children"][0]["job_id"]
    assert bob.get(f"/api/v1/jobs/{child}/results").status_code == 404
    dep = bob.post("/api/v1/jobs", json={**OK, "depends_on": {"after_ok": [child]}})
    assert dep.status_code == 422 and "unknown" in dep.json()["detail"]
    assert admin.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 200


def test_operator_actions_need_an_admin_and_history_is_scoped(
    alice: httpx.Client, bob: httpx.Client, admin: httpx.Client
) -> None:
    job = submit(alice, argv=["sleep", "60"], name="alice-history")
    assert bob.patch(f"/api/v1/jobs/{job['id']}", json={"priority": 9}).status_code == 404
    assert alice.patch(f"/api/v1/jobs/{job['id']}", json={"priority": 9}).status_code == 200
    assert bob.post(f"/api/v1/jobs/{job['id']}/resubmit").status_code == 404
    assert alice.put("/api/v1/workers/test-node/limits", json={}).status_code == 403
    assert alice.put("/pool/limits", json={"max_concurrent_jobs": 1}).status_code == 403
    admin.post(f"/api/v1/jobs/{job['id']}/cancel")
    history = bob.get("/api/v1/history", params={"limit": 1000}).json()["jobs"]
    assert job["id"] not in {j["id"] for j in history}
    assert all(j["owner"] == "bob" for j in history)
    assert bob.get("/api/v1/audit").status_code == 403


def test_pyedb_handler_sends_simfarm_token(
    secure_url: str, alice: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simfarm.compat.pyedb import JobManagerHandler

    job = submit(alice, argv=["sleep", "60"], name="pyedb-cancel")
    monkeypatch.delenv("SIMFARM_TOKEN", raising=False)
    anonymous = JobManagerHandler(url=secure_url)
    anonymous.start_service()  # health is public: it attaches
    assert anonymous.cancel_job(job["id"]) is False  # 401
    anonymous.close()
    monkeypatch.setenv("SIMFARM_TOKEN", ALICE)
    handler = JobManagerHandler(url=secure_url)
    handler.start_service()
    assert handler.cancel_job(job["id"]) is True
    assert alice.get(f"/api/v1/jobs/{job['id']}").json()["state"] in ("cancelled", "running")
    handler.close()

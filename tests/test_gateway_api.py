"""The REST API over real HTTP: documented answers, and 4xx (never 5xx) for bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import wait_for

OK = {"argv": ["true"]}


def test_submit_returns_201_location_and_links(http: httpx.Client) -> None:
    response = http.post("/api/v1/jobs", json={"argv": ["true"], "name": "x", "priority": 7})
    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "pending" and body["priority"] == 7
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert body["links"]["events"] == f"/api/v1/jobs/{body['id']}/events"
    got = http.get(response.headers["Location"]).json()
    assert got["id"] == body["id"] and got["spec"]["name"] == "x"


def test_idempotency_key_makes_retries_safe(http: httpx.Client) -> None:
    headers = {"Idempotency-Key": "retry-abc-1"}
    first = http.post("/api/v1/jobs", json=OK, headers=headers)
    second = http.post("/api/v1/jobs", json=OK, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]


def test_query_reads_many_jobs_by_id_in_one_request(http: httpx.Client) -> None:
    ids = [http.post("/api/v1/jobs", json={**OK, "name": f"q{n}"}).json()["id"]
           for n in range(3)]
    asked = [ids[2], "no-such-job", ids[0], ids[2], ids[1]]
    response = http.post("/api/v1/jobs/query", json={"ids": asked})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [j["id"] for j in body["jobs"]] == [ids[2], ids[0], ids[1]]  # asked order, once
    assert [j["spec"]["name"] for j in body["jobs"]] == ["q2", "q0", "q1"]
    assert body["jobs"][0]["links"]["self"] == f"/api/v1/jobs/{ids[2]}"
    assert body["missing"] == ["no-such-job"]


@pytest.mark.parametrize(("body", "field"), [
    ({"ids": []}, "ids"),
    ({"ids": "abc"}, "ids"),
    ({}, "ids"),
    ([], "ids"),
    ({"ids": ["a"] * 1001}, "ids"),
    ({"ids": ["ok", "../etc/passwd"]}, "ids.1"),
    ({"ids": ["ok", 7]}, "ids.1"),
])
def test_query_refuses_too_many_or_bad_ids(http: httpx.Client, body: Any, field: str) -> None:
    response = http.post("/api/v1/jobs/query", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["fields"][0]["field"] == field


def test_health(http: httpx.Client) -> None:
    body = http.get("/api/v1/health").json()
    assert body["status"] == "ok" and "pending" in body["jobs"]


def test_list_filters_by_state_and_pages(http: httpx.Client) -> None:
    sleeper = {"argv": ["sleep", "30"], "priority": 0, "owner": "lister"}
    ids = [http.post("/api/v1/jobs", json=sleeper).json()["id"] for _ in range(3)]
    for job_id in ids:
        http.post(f"/api/v1/jobs/{job_id}/cancel")
    page = http.get("/api/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == ids[:0:-1] and page["next_cursor"]
    nxt = http.get("/api/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert nxt["jobs"][0]["id"] == ids[0]
    wait_for(
        lambda: [http.get(f"/api/v1/jobs/{i}").json()["state"] for i in ids],
        lambda states: states == ["cancelled"] * 3,
        20,
        "the jobs to be cancelled",
    )
    seen: list[dict[str, str]] = []
    cursor = None
    while not set(ids) <= {j["id"] for j in seen}:  # other tests cancel jobs too: page on
        params = {"state": "cancelled", "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = http.get("/api/v1/jobs", params=params).json()
        seen += page["jobs"]
        cursor = page["next_cursor"]
        assert cursor or set(ids) <= {j["id"] for j in seen}, "listing ended without our jobs"
    assert all(j["state"] == "cancelled" for j in seen)


def _post_raw(
    http: httpx.Client, content: bytes, ctype: str = "application/json"
) -> httpx.Response:
    return http.post("/api/v1/jobs", content=content, headers={"Content-Type": ctype})


BAD_SUBMISSIONS: list[tuple[str, dict[str, Any], int, str]] = [
    ("empty argv", {"argv": []}, 422, "body"),
    ("argv not a list", {"argv": "rm -rf /"}, 422, "argv"),
    ("argv with number", {"argv": ["echo", 1]}, 422, "argv.1"),
    ("argv with null", {"argv": ["echo", None]}, 422, "argv.1"),
    ("argv[0] empty", {"argv": [""]}, 422, "argv"),
    ("NUL in argument", {"argv": ["echo", "a\u0000b"]}, 422, "argv"),
    ("priority too high", {**OK, "priority": 11}, 422, "priority"),
    ("priority negative", {**OK, "priority": -1}, 422, "priority"),
    ("priority text", {**OK, "priority": "high"}, 422, "priority"),
    ("unknown field", {**OK, "colour": "red"}, 422, "colour"),
    ("unknown resource", {**OK, "resources": {"gpus_x": 1}}, 422, "resources.gpus_x"),
    ("zero cores", {**OK, "resources": {"cores": 0}}, 422, "resources.cores"),
    ("huge cores", {**OK, "resources": {"cores": 10**9}}, 422, "resources.cores"),
    ("negative memory", {**OK, "resources": {"memory_mb": -5}}, 422, "resources.memory_mb"),
    ("bad label name", {**OK, "resources": {"labels": {"a b": "x"}}}, 422, "resources.labels"),
    ("bad env name", {**OK, "env": {"A=B": "x"}}, 422, "env"),
    ("env value not string", {**OK, "env": {"A": 1}}, 422, "env.A"),
    ("negative timeout", {**OK, "timeout_s": -1}, 422, "timeout_s"),
    ("too many retries", {**OK, "retries": 99}, 422, "retries"),
    ("bad kind", {**OK, "kind": "shell"}, 422, "kind"),
    ("name too long", {**OK, "name": "x" * 201}, 422, "name"),
    ("too many arguments", {"argv": ["echo"] * 5000}, 422, "argv"),
]


@pytest.mark.parametrize(
    "case, body, status, field", BAD_SUBMISSIONS, ids=[c[0] for c in BAD_SUBMISSIONS]
)
def test_bad_submission_names_the_field(
    http: httpx.Client, case: str, body: dict[str, Any], status: int, field: str
) -> None:
    before = http.get("/api/v1/health").json()["jobs"]["pending"]
    response = http.post("/api/v1/jobs", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "detail", "fields"}
    assert any(f["field"].startswith(field) for f in error["fields"]), error
    assert http.get("/api/v1/health").json()["jobs"]["pending"] <= before + 1


@pytest.mark.parametrize(
    "content, ctype, status",
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'"just a string"', "application/json", 422),
        (b"argv=true", "application/x-www-form-urlencoded", 415),
        (b'{"argv": ["true"]}', "text/plain", 415),
        (b"\xff\xfe\x00", "application/json", 400),
    ],
)
def test_malformed_bodies(http: httpx.Client, content: bytes, ctype: str, status: int) -> None:
    response = _post_raw(http, content, ctype)
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_oversized_body_is_413(http: httpx.Client) -> None:
    response = http.post("/api/v1/jobs", json={"argv": ["echo", "x" * 2_000_000]})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    "method, path, params, status, field",
    [
        ("GET", "/api/v1/jobs/doesnotexist", None, 404, None),
        ("GET", "/api/v1/jobs/..%2F..%2Fetc", None, 404, None),
        ("POST", "/api/v1/jobs/doesnotexist/cancel", None, 404, None),
        ("GET", "/api/v1/jobs/doesnotexist/events", None, 404, None),
        ("GET", "/api/v1/jobs", {"state": "sleeping"}, 422, "state"),
        ("GET", "/api/v1/jobs", {"limit": "lots"}, 422, "limit"),
        ("GET", "/api/v1/jobs", {"limit": "0"}, 422, "limit"),
        ("GET", "/api/v1/jobs", {"cursor": "abc"}, 422, "cursor"),
        ("DELETE", "/api/v1/jobs", None, 405, None),
        ("GET", "/api/v1/nothing-here", None, 404, None),
    ],
)
def test_bad_requests(
    http: httpx.Client,
    method: str,
    path: str,
    params: dict[str, str] | None,
    status: int,
    field: str | None,
) -> None:
    response = http.request(method, path, params=params)
    assert response.status_code == status, response.text
    body = response.json()
    if field:
        assert body["fields"][0]["field"] == field


def test_bad_event_cursor(http: httpx.Client) -> None:
    job_id = http.post("/api/v1/jobs", json=OK).json()["id"]
    response = http.get(f"/api/v1/jobs/{job_id}/events", params={"since": "yesterday"})
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "since"
    response = http.get(f"/api/v1/jobs/{job_id}/events", params={"wait": "999"})
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "wait"


def test_bad_idempotency_key(http: httpx.Client) -> None:
    response = http.post("/api/v1/jobs", json=OK, headers={"Idempotency-Key": "a b"})
    assert response.status_code == 400
    assert response.json()["fields"][0]["field"] == "Idempotency-Key"


def test_batch_submit_stores_all_or_none(http: httpx.Client) -> None:
    jobs = [{"argv": ["true"], "name": f"b{i}", "priority": 0} for i in range(50)]
    response = http.post("/api/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 201, response.text
    stored = response.json()["jobs"]
    assert [j["spec"]["name"] for j in stored] == [f"b{i}" for i in range(50)]
    assert all(j["state"] in ("pending", "scheduled", "running", "completed") for j in stored)
    assert http.get(stored[7]["links"]["self"]).json()["id"] == stored[7]["id"]
    before = http.get("/api/v1/health").json()["jobs"]
    bad = http.post("/api/v1/jobs/batch", json={"jobs": [{"argv": ["true"]}, {"argv": []}]})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"].startswith("jobs.1")
    outside = http.post("/api/v1/jobs/batch",
                        json={"jobs": [{"argv": ["true"]}, {"argv": ["true"], "cwd": "rel"}]})
    assert outside.status_code == 422 and outside.json()["fields"][0]["field"] == "jobs.1.cwd"
    assert http.get("/api/v1/health").json()["jobs"]["pending"] <= before["pending"] + 1
    assert http.post("/api/v1/jobs/batch", json={"jobs": []}).status_code == 422

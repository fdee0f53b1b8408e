"""Dashboard pages over real HTTP: the jobs table (filters, cursor paging, a cost that
does not grow with the number of jobs), the job page, workers and the submit form."""

from __future__ import annotations

import re

import httpx
import pytest
from flask import Flask

from simfarm.common.models import JobSpec
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore
from simfarm.gateway.app import create_app
from tests.helpers import CountingRedis, wait_for


def test_jobs_table_filters_and_pages(http: httpx.Client) -> None:
    ids = [http.post("/api/v1/jobs", json={"argv": ["sleep", "60"], "name": f"dash-{n}",
                                             "priority": 0, "owner": "dash-owner"}
                     ).json()["id"] for n in range(3)]
    page = http.get("/", params={"owner": "dash-owner", "limit": 2})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    rows = re.findall(r'<tr data-job="([0-9a-f]+)"', page.text)
    assert rows == [ids[2], ids[1]]  # newest first
    nxt = re.search(r'id="next-page" href="([^"]+)"', page.text)
    assert nxt is not None
    second = http.get(nxt.group(1).replace("&amp;", "&"))
    assert re.findall(r'<tr data-job="([0-9a-f]+)"', second.text) == [ids[0]]
    assert 'id="next-page"' not in second.text
    for job_id in ids:
        http.post(f"/api/v1/jobs/{job_id}/cancel")
    wait_for(lambda: http.get("/", params={"owner": "dash-owner", "state": "cancelled"}).text,
             lambda text: set(re.findall(r'<tr data-job="([0-9a-f]+)"', text)) == set(ids),
             20, "the cancelled filter to list the three jobs")
    bad = http.get("/", params={"state": "sleeping", "limit": "x"})
    assert bad.status_code == 422
    assert "state: Input should be" in bad.text and "limit: Input should be" in bad.text


def test_job_page_shows_timeline_and_log(farm: httpx.Client) -> None:
    job = farm.post("/api/v1/jobs", json={"argv": ["sh", "-c", "echo hello-dashboard"],
                                          "name": "dash-log"}).json()
    wait_for(lambda: farm.get(f"/api/v1/jobs/{job['id']}").json()["state"],
             lambda s: s == "completed", 30, "the job to complete")
    page = farm.get(f"/ui/jobs/{job['id']}")
    assert page.status_code == 200
    assert "hello-dashboard" in page.text
    timeline = re.findall(r'<li data-event="[^"]+"><time>[^<]*</time> <span class="state '
                          r'state-(\w+)"', page.text)
    assert timeline == ["pending", "scheduled", "running", "completed"]
    assert farm.get("/ui/jobs/does-not-exist").status_code == 404
    assert farm.get("/ui/jobs/..%2F..").status_code == 404


def test_workers_page_lists_nodes(farm: httpx.Client) -> None:
    page = farm.get("/ui/workers")
    assert page.status_code == 200
    assert 'data-node="test-node"' in page.text and "/ 8" in page.text


def test_submit_page_and_assets_work_offline(http: httpx.Client) -> None:
    page = http.get("/ui/submit")
    assert page.status_code == 200 and 'id="submit-form"' in page.text
    for url in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
        assert url.startswith("/"), f"{url} is not served by the gateway"
        assert http.get(url).status_code == 200
    assert http.get("/ui/assets/nope.js").status_code == 404


@pytest.fixture(scope="module")
def big_app(settings: Settings) -> tuple[Flask, JobStore]:
    isolated = settings.model_copy(update={"key_prefix": "dashbig:"})
    connection = CountingRedis.from_url(settings.require_redis_url())
    return create_app(isolated, connection), JobStore(connection, "dashbig:")


def _page_cost(app: Flask, query: str) -> int:
    client = app.test_client()
    before = CountingRedis.commands
    assert client.get(query).status_code == 200
    return CountingRedis.commands - before


def test_jobs_table_cost_does_not_grow_with_the_number_of_jobs(
    big_app: tuple[Flask, JobStore],
) -> None:
    app, store = big_app
    spec = JobSpec(argv=["true"], priority=3)
    store.create_batch([(f"small{n:05d}", spec, {}) for n in range(100)])
    small = [_page_cost(app, q) for q in ("/", "/?state=pending", "/?cursor=60")]
    store.create_batch([(f"big{n:06d}", spec, {}) for n in range(5_000)])
    big = [_page_cost(app, q) for q in ("/", "/?state=pending", "/?cursor=60")]
    assert big == small  # same number of Redis commands for 100 or 5,100 jobs
    assert max(big) <= 70  # ~ one read per row of a 50-row page plus a few counts

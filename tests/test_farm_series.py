"""The farm's time series: what one sample records (against a real redis-server, jobs
moved through the store's own transitions), the tiers and their bounds, and
``GET /api/v1/stats/series`` on the test farm."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from simfarm.common.farm_series import percentile, resample
from simfarm.common.models import JobSpec, NodeInfo, ResourceRequest
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.farm_stats import FarmStatsStore
from simfarm.workers.context import RunnerTable, WorkerContext
from simfarm.workers.farm_sampler import FarmSampler
from tests.helpers import wait_for

STEP = 10.0


@pytest.fixture
def ctx(redis_client: redis.Redis, settings: Settings) -> Iterator[WorkerContext]:
    """A worker context on the session's Redis under a key prefix of its own."""
    prefix = f"series-{uuid.uuid4().hex[:8]}:"
    own = settings.model_copy(update={"key_prefix": prefix, "stats_bucket_s": STEP,
                                      "stats_buckets": 6, "stats_coarse_bucket_s": 60.0,
                                      "stats_coarse_buckets": 3})
    yield WorkerContext(settings=own, redis=redis_client,
                        jobs=JobStore.for_settings(redis_client, own),
                        nodes=NodeStore(redis_client, prefix), runners=RunnerTable({}))
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


def _job(ctx: WorkerContext, priority: int, cores: int = 1) -> str:
    spec = JobSpec(argv=["true"], priority=priority, resources=ResourceRequest(cores=cores))
    job, _ = ctx.jobs.create(spec)
    return job.id


def _run(ctx: WorkerContext, job_id: str, node: str, started: float) -> None:
    ctx.jobs.transition(job_id, JobState.SCHEDULED, new_attempt=True, fields={"node": node})
    ctx.jobs.transition(job_id, JobState.RUNNING, fields={"started_at": repr(started)})


def _end(ctx: WorkerContext, job_id: str, state: JobState) -> None:
    ctx.jobs.transition(job_id, state)


def test_one_sample_records_cores_queue_throughput_and_waiting(ctx: WorkerContext) -> None:
    ctx.nodes.heartbeat(NodeInfo(name="n1", hostname="h1", queue="q1", cores_total=8), 60)
    ctx.nodes.heartbeat(NodeInfo(name="n2", hostname="h2", queue="q2", cores_total=4), 60)
    sampler = FarmSampler(ctx, is_leader=lambda: True)
    stats = FarmStatsStore(ctx.redis, ctx.settings.key_prefix)
    sampler.tick(time.time())  # the bucket before: counts after it are this test's
    first = stats.last("fine")
    assert first is not None
    created = time.time()
    end = math.ceil((created + 1) / STEP) * STEP  # the bucket the jobs start in
    running = _job(ctx, priority=7, cores=3)
    done, failed = _job(ctx, priority=3), _job(ctx, priority=3)
    waiting = [_job(ctx, priority=2), _job(ctx, priority=2), _job(ctx, priority=9)]
    starts = {running: end - 0.4, done: end - 0.6, failed: end - 0.2}  # after `created`
    _run(ctx, running, "n1", started=starts[running])
    _run(ctx, done, "n2", started=starts[done])
    _run(ctx, failed, "n2", started=starts[failed])
    _end(ctx, done, JobState.COMPLETED)
    _end(ctx, failed, JobState.FAILED)
    last = max(end, math.ceil(time.time() / STEP) * STEP)  # `end` or the next one
    assert sampler.tick(last + 0.2)
    assert not sampler.tick(last + 0.3)  # once per bucket

    def point(name: str, at: float = last) -> float:
        points = stats.read("fine", name, at, at)
        assert len(points) == 1, (name, points)
        return points[0][1]

    def total(name: str) -> float:
        return sum(v for _, v in stats.read("fine", name, first + 1, last))

    assert (point("cores_busy"), point("cores_free")) == (3, 9)
    assert (point("cores_busy@node=n1"), point("cores_free@node=n1")) == (3, 5)
    assert (point("cores_busy@node=n2"), point("cores_free@node=n2")) == (0, 4)
    assert point("jobs_pending") == len(waiting)
    assert (point("jobs_pending@priority=2"), point("jobs_pending@priority=9")) == (2, 1)
    assert (point("jobs_running"), point("jobs_running@priority=7")) == (1, 1)
    assert (total("jobs_finished"), total("jobs_failed")) == (2, 1)
    waits = sorted(s - created for s in starts.values())
    assert point("wait_p50", end) == pytest.approx(percentile(waits, 0.5), abs=0.2)
    assert point("wait_p95", end) == pytest.approx(percentile(waits, 0.95), abs=0.2)


def test_missed_buckets_get_their_counts_and_the_tiers_stay_bounded(ctx: WorkerContext) -> None:
    stats = FarmStatsStore(ctx.redis, ctx.settings.key_prefix)
    sampler = FarmSampler(ctx, is_leader=lambda: True)
    job = _job(ctx, priority=5)
    _run(ctx, job, "n1", started=time.time())
    _end(ctx, job, JobState.COMPLETED)
    finished_at = time.time()
    start = math.floor(finished_at / STEP) * STEP - 20  # the job's bucket ends at start + 30
    sampler.tick(start + 1)
    # No leader for 30 s: the buckets in between get their counts afterwards.
    sampler.tick(start + 31)
    finished = stats.read("fine", "jobs_finished", start, start + 30)
    assert finished == [(start, 0.0), (start + 10, 0.0), (start + 20, 0.0), (start + 30, 1.0)]
    gauge_times = [t for t, _ in stats.read("fine", "cores_busy", start, start + 30)]
    assert gauge_times == [start, start + 30]  # gauges only when sampled
    for t in range(40, 200, 10):
        sampler.tick(start + t + 0.5)
    # The fine tier keeps 6 buckets, the coarse one 3 points of 60 s, summing the counts.
    assert [t for t, _ in stats.read("fine", "jobs_finished", 0, math.inf)] == [
        start + t for t in range(140, 200, 10)]
    coarse = stats.read("coarse", "jobs_finished", 0, math.inf)
    assert len(coarse) == 3 and sum(v for _, v in coarse) == 1.0
    assert all(t % 60 == 0 for t, _ in coarse)


def test_resample_combines_points_by_kind() -> None:
    points = [(10.0, 1.0), (20.0, 3.0), (30.0, 5.0), (40.0, 7.0)]
    assert resample(points, 20, "mean") == [(20.0, 2.0), (40.0, 6.0)]
    assert resample(points, 20, "sum") == [(20.0, 4.0), (40.0, 12.0)]
    assert resample(points, 40, "max") == [(40.0, 7.0)]
    assert resample(points[:3], 20, "sum") == [(20.0, 4.0), (30.0, 5.0)]  # still filling
    assert percentile([], 0.5) is None and percentile([4.0], 0.95) == 4.0


def test_series_api_on_the_farm(farm: httpx.Client) -> None:
    job = farm.post("/api/v1/jobs", json={"argv": ["true"], "name": "counted"}).json()
    wait_for(lambda: farm.get(f"/api/v1/jobs/{job['id']}").json()["state"],
             lambda s: s == "completed", 30, "job to complete")

    def finished() -> float:
        body = farm.get("/api/v1/stats/series",
                        params={"metric": "jobs_finished", "since": -120}).json()
        return sum(v for _, v in body["series"][0]["points"])

    wait_for(finished, lambda n: n >= 1, 10, "the finished job in the series")

    def by_node() -> dict[str, Any]:
        return dict(farm.get("/api/v1/stats/series", params={
            "metric": "cores_busy,jobs_pending", "since": -60, "node": "*",
            "priority": "*"}).json())

    # A node's series starts with the leading dispatcher's first sample that sees it,
    # which need not be the one that counted the finished job.
    body = wait_for(by_node, lambda b: {"node": "test-node"} in [s["labels"] for s in b["series"]],
                    30, "test-node's cores in the series")
    names = [(s["metric"], s["labels"]) for s in body["series"]]
    assert ("cores_busy", {"node": "test-node"}) in names
    assert ("jobs_pending", {"priority": "10"}) in names
    # Live nodes have a current value (a node that left has its past points only).
    mine = next(s for s in body["series"] if s["labels"].get("node") == "test-node")
    assert mine["current"] is not None and mine["current"][1] >= 0
    assert body["bucket_s"] == 1.0 and body["step"] == 1.0
    coarse = farm.get("/api/v1/stats/series", params={"metric": "jobs_finished",
                                                      "since": -60, "step": 30}).json()
    assert coarse["series"][0]["aggregate"] == "sum" and len(coarse["series"][0]["points"]) <= 3
    bad = farm.get("/api/v1/stats/series", params={"metric": "cores_busy,nope"})
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "metric" and "nope" in bad.json()["detail"]
    small = farm.get("/api/v1/stats/series", params={"metric": "cores_busy", "step": 0.5})
    assert small.status_code == 422 and small.json()["fields"][0]["field"] == "step"

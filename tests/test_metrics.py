"""/metrics over real HTTP with a real worker: jobs by state, queue depth per priority,
dispatch latency and runtime histograms, node capacity."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from simfarm.common.models import JobSpec
from simfarm.common.store import JobStore
from tests.helpers import wait_for


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_follow_the_farm(farm: httpx.Client, store: JobStore) -> None:
    scrape(farm)  # the first scrape starts following the event stream
    held = [
        store.create(JobSpec(argv=["true"], priority=9,
                             resources={"labels": {"metrics-test": "never"}}))[0].id
        for _ in range(2)
    ]
    job = farm.post("/api/v1/jobs", json={"argv": ["sleep", "0.2"], "priority": 7}).json()
    wait_for(lambda: farm.get(f"/api/v1/jobs/{job['id']}").json()["state"],
             lambda s: s == "completed", 30, "the job to complete")
    metrics = scrape(farm)
    assert metrics[("simfarm_queue_depth", (("priority", "9"),))] >= 2
    assert metrics[("simfarm_jobs", (("state", "completed"),))] >= 1
    assert metrics[("simfarm_jobs", (("state", "pending"),))] >= 2
    assert metrics[("simfarm_dispatch_latency_seconds_count", ())] >= 1
    runtime_count = metrics[("simfarm_job_runtime_seconds_count", (("state", "completed"),))]
    assert runtime_count >= 1
    # the 0.2 s job falls in a bucket of at least 1 s, and no faster one exists
    assert metrics[("simfarm_job_runtime_seconds_bucket", (("le", "1.0"), ("state", "completed")))]
    assert metrics[("simfarm_job_runtime_seconds_sum", (("state", "completed"),))] >= 0.2
    node = (("node", "test-node"),)
    assert metrics[("simfarm_node_up", node)] == 1
    assert metrics[("simfarm_node_cores", node)] == 8
    assert metrics[("simfarm_node_memory_bytes", node)] == 16_384 * 1024 * 1024
    assert 0 <= metrics[("simfarm_node_cores_free", node)] <= 8
    assert metrics[("simfarm_websocket_clients", ())] >= 0
    for job_id in held:
        store.request_cancel(job_id)
    after = scrape(farm)
    assert after[("simfarm_queue_depth", (("priority", "9"),))] == (
        metrics[("simfarm_queue_depth", (("priority", "9"),))] - 2
    )
    assert after[("simfarm_job_runtime_seconds_count", (("state", "completed"),))] == runtime_count


def test_metrics_count_websocket_clients(http: httpx.Client, gateway: str) -> None:
    from websockets.sync.client import connect

    before = scrape(http)
    with connect(gateway.replace("http", "ws", 1) + "/api/v1/ws") as ws:
        ws.send(json.dumps({"op": "subscribe", "jobs": ["nothing"]}))
        assert json.loads(ws.recv(timeout=10))["op"] == "subscribed"
        during = scrape(http)
        assert during[("simfarm_websocket_clients", ())] >= 1
        assert (during[("simfarm_websocket_connections_total", ())]
                == before.get(("simfarm_websocket_connections_total", ()), 0) + 1)
    wait_for(lambda: scrape(http)[("simfarm_websocket_clients", ())],
             lambda n: n == during[("simfarm_websocket_clients", ())] - 1, 10,
             "the closed WebSocket to be uncounted")

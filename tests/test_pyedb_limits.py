"""PyEDB's ``PUT /pool/limits``: the change reaches the farm's nodes and is enforced
(memory and disk too, not only concurrency — a PyEDB defect)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import wait_for

NODE = "test-node"


def worker(http: httpx.Client) -> dict[str, Any]:
    nodes = http.get("/api/v1/workers").json()["workers"]
    return next(n for n in nodes if n["name"] == NODE)


@pytest.fixture
def restore_limits(farm: httpx.Client) -> Iterator[httpx.Client]:
    before = farm.get(f"/api/v1/workers/{NODE}/limits").json()
    yield farm
    farm.put(f"/api/v1/workers/{NODE}/limits", json=before)
    wait_for(lambda: worker(farm), lambda n: n["held_reason"] is None, 20, "the node to be free")


def test_min_free_memory_holds_the_node_until_lowered(restore_limits: httpx.Client) -> None:
    http = restore_limits
    answer = http.put("/pool/limits", params={"node": NODE}, json={"min_memory_gb": 1_000_000})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] and body["nodes"] == [NODE]
    assert body["limits"]["min_memory_gb"] == 1_000_000
    held = wait_for(lambda: worker(http), lambda n: n["held_reason"] is not None, 20,
                    "the node to be held")
    assert "free memory" in held["held_reason"] and held["status"] == "held"
    job = http.post("/api/v1/jobs", json={"argv": [sys.executable, "-c", "print('ran')"],
                                          "resources": {"labels": {"pool": "main"}}}).json()
    assert http.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "pending"
    http.put("/pool/limits", params={"node": NODE}, json={"min_memory_gb": 0})
    done = wait_for(lambda: http.get(f"/api/v1/jobs/{job['id']}").json(),
                    lambda j: j["state"] == "completed", 30, "the job to run once released")
    assert done["node"] == NODE


def test_min_free_disk_and_concurrency_map_onto_node_limits(restore_limits: httpx.Client) -> None:
    http = restore_limits
    answer = http.put("/pool/limits", params={"node": NODE},
                      json={"max_concurrent_jobs": 2, "min_disk_gb": 1.5, "max_cpu_percent": 99.5})
    assert answer.status_code == 200
    limits = http.get(f"/api/v1/workers/{NODE}/limits").json()
    assert limits["max_jobs"] == 2 and limits["min_free_disk_mb"] == 1536
    assert limits["max_cpu_percent"] == 99.5


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({}, 400, None),
        ({"max_concurrent_jobs": 0}, 422, "max_concurrent_jobs"),
        ({"max_concurrent_jobs": "4"}, 422, "max_concurrent_jobs"),
        ({"max_cpu_percent": 150}, 422, "max_cpu_percent"),
        ({"min_disk_gb": -1}, 422, "min_disk_gb"),
        ({"max_memory": 3}, 422, "max_memory"),
    ],
)
def test_bad_pool_limits_are_refused_without_change(farm: httpx.Client, body: dict[str, Any],
                                                    status: int, field: str | None) -> None:
    before = farm.get(f"/api/v1/workers/{NODE}/limits").json()
    answer = farm.put("/pool/limits", json=body)
    assert answer.status_code == status and answer.json()["success"] is False
    if field:
        assert answer.json()["fields"][0]["field"] == field
    assert farm.get(f"/api/v1/workers/{NODE}/limits").json() == before


def test_unknown_node_is_404(farm: httpx.Client) -> None:
    answer = farm.put("/pool/limits", params={"node": "nowhere"}, json={"max_cpu_percent": 50})
    assert answer.status_code == 404


@pytest.fixture
def every_node_restored(farm: httpx.Client) -> Iterator[httpx.Client]:
    """The handler's changes reach every node: each gets its limits back afterwards."""
    names = [n["name"] for n in farm.get("/api/v1/workers").json()["workers"] if n["alive"]]
    before = {n: farm.get(f"/api/v1/workers/{n}/limits").json() for n in names}
    yield farm
    for name, limits in before.items():
        farm.put(f"/api/v1/workers/{name}/limits", json=limits)


def test_handler_edits_the_pool_limits(every_node_restored: httpx.Client, gateway: str) -> None:
    from simfarm.compat.pyedb import JobManager, JobManagerHandler

    http = every_node_restored
    handler = JobManagerHandler(url=gateway)
    handler.start_service()
    # Values no node is held by (CPU use never exceeds 100 %; slots are capped by the
    # worker's concurrency), as other tests share these nodes.
    limits = handler.edit_concurrent_limits({"max_cpu_percent": 100})
    assert limits is not None and limits["max_cpu_percent"] == 100
    assert handler.resource_limits.max_cpu_percent == 100
    assert http.get(f"/api/v1/workers/{NODE}/limits").json()["max_cpu_percent"] == 100
    assert handler.edit_concurrent_limits({"max_cpu_percent": 150}) is None  # refused
    handler.close()
    manager = JobManager(url=gateway)
    assert asyncio.run(manager.edit_concurrent_limits({"max_concurrent_jobs": 64})) is not None
    assert manager.resource_limits.max_concurrent_jobs == 64
    assert http.get(f"/api/v1/workers/{NODE}/limits").json()["max_jobs"] == 64

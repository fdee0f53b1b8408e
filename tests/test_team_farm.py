"""A farm shared by a team, with real processes: two worker processes (nodes ``n1`` and
``n2``, 2 cores and 2 slots each, labelled with their own name), one private
redis-server, the real gateway over HTTP in token mode. Users alice (account cfd) and
bob (account em), admin root. Drain and resume a node.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simfarm.common.accounts import Account
from tests.helpers import wait_for
from tests.team import TeamFarm as Farm
from tests.team import team_farm

pytestmark = pytest.mark.timeout(180)

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789",
          "root": "root-token-0123456789"}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with team_farm(tmp_path_factory.mktemp("team"), TOKENS, http_timeout_s=30, wait_s=30,
                   accounts=[Account(name="cfd", shares=1, users=("alice",)),
                             Account(name="em", shares=1, users=("bob",))]) as running:
        yield running


def test_drain_lets_running_jobs_finish_and_sends_new_ones_elsewhere(farm: Farm) -> None:
    root = farm.users["root"]
    running = farm.submit("alice", argv=["sleep", "2"], resources={"labels": {"node": "n1"}})
    farm.wait_state(running, "running")
    refused = farm.users["alice"].post("/api/v1/workers/n1/drain", json={})
    assert refused.status_code == 403  # admins only
    drained = root.post("/api/v1/workers/n1/drain", json={"reason": "disk swap"})
    assert drained.status_code == 200, drained.text
    assert drained.json()["status"] == "draining"
    assert drained.json()["drain"]["by"] == "root"
    # new work goes to the other node while n1 still runs its job
    elsewhere = farm.submit("bob", argv=["true"])
    assert farm.wait_state(elsewhere, "completed")["node"] == "n2"
    # the running job is not disturbed; then n1 is drained
    assert farm.wait_state(running, "completed", "failed")["state"] == "completed"
    wait_for(lambda: farm.worker("n1")["status"], lambda s: s == "drained", 20, "n1 drained")
    pinned = farm.submit("bob", argv=["true"], resources={"labels": {"node": "n1"}})
    job = wait_for(lambda: farm.job(pinned), lambda j: "drained by root" in (j["reason"] or ""),
                   20, "the pinned job's reason to name the drain")
    assert job["state"] == "pending" and "disk swap" in job["reason"]
    metrics = root.get("/metrics").text
    assert 'simfarm_node_draining{node="n1"} 1.0' in metrics
    assert 'simfarm_node_draining{node="n2"} 0.0' in metrics
    listed = farm.cli("alice", "workers")
    assert listed.returncode == 0 and "drained by root: disk swap" in listed.stdout
    resumed = farm.cli("root", "resume", "n1", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert '"drain": null' in resumed.stdout
    assert farm.wait_state(pinned, "completed")["node"] == "n1"
    assert farm.worker("n1")["status"] in ("ready", "full")


def _pin(node: str, cores: int = 2) -> dict[str, Any]:
    return {"labels": {"node": node}, "cores": cores}


def test_held_jobs_wait_keep_their_place_and_are_released(farm: Farm) -> None:
    alice, bob, root = farm.users["alice"], farm.users["bob"], farm.users["root"]
    filler = farm.submit("bob", argv=["sleep", "2"], resources=_pin("n1"))
    farm.wait_state(filler, "running")
    first = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    held = alice.post(f"/api/v1/jobs/{first}/hold", json={"reason": "wrong mesh"})
    assert held.status_code == 200, held.text
    assert (held.json()["state"], held.json()["reason"]) == ("held", "held by alice: wrong mesh")
    assert bob.post(f"/api/v1/jobs/{first}/release").status_code == 404  # not his job
    second = farm.submit("alice", argv=["sleep", "2"], resources=_pin("n1"))
    late = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    # the held job is never dispatched: the one behind it starts once n1 is free
    farm.wait_state(second, "running")
    assert farm.job(first)["state"] == "held" and farm.job(late)["state"] == "pending"
    assert alice.post(f"/api/v1/jobs/{first}/release").json()["state"] == "pending"
    done = {j: farm.wait_state(j, "completed") for j in (first, late)}
    # back at its place in line: ahead of the job submitted while it was held
    assert done[first]["started_at"] < done[late]["started_at"]
    # a job an admin holds is released by an admin only; holding a running job is a 409
    # the filler holds n1 until it is cancelled: the released job is seen pending
    filler = farm.submit("bob", argv=["sleep", "60"], resources=_pin("n1"))
    farm.wait_state(filler, "running")
    assert bob.post(f"/api/v1/jobs/{filler}/hold").status_code == 409
    blocked = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    assert root.post(f"/api/v1/jobs/{blocked}/hold", json={"reason": "licence audit"}
                     ).json()["held_by"] == "root"
    cancelled = farm.submit("alice", argv=["true"], resources=_pin("n1"))
    assert alice.post(f"/api/v1/jobs/{cancelled}/hold").json()["state"] == "held"
    assert alice.post(f"/api/v1/jobs/{cancelled}/cancel").json()["state"] == "cancelled"
    refused = farm.cli("alice", "release", blocked)
    assert refused.returncode == 1 and "only an admin releases it" in refused.stderr
    released = farm.cli("root", "release", blocked)
    assert released.returncode == 0 and "pending" in released.stdout, released.stderr
    assert bob.post(f"/api/v1/jobs/{filler}/cancel").status_code == 202
    farm.wait_state(blocked, "completed")


def test_a_sweep_is_held_and_released_as_a_whole(farm: Farm) -> None:
    bob = farm.users["bob"]
    filler = farm.submit("bob", argv=["sleep", "2"], resources=_pin("n2"))
    farm.wait_state(filler, "running")
    sweep = bob.post("/api/v1/sweeps", json={
        "template": {"argv": ["echo", "{x}"], "resources": _pin("n2")},
        "grid": {"x": [1, 2, 3]}, "throttle": 2}).json()
    held = bob.post(f"/api/v1/sweeps/{sweep['id']}/hold", json={"reason": "check inputs"})
    assert held.status_code == 200 and held.json()["held"] == 3, held.text
    assert bob.get(f"/api/v1/sweeps/{sweep['id']}").json()["state"] == "held"
    farm.wait_state(filler, "completed")
    assert {c["state"] for c in bob.get(f"/api/v1/sweeps/{sweep['id']}").json()["children"]
            } == {"held"}
    released = bob.post(f"/api/v1/sweeps/{sweep['id']}/release")
    assert (released.json()["changed"], released.json()["held"]) == (3, 0)
    final = wait_for(lambda: bob.get(f"/api/v1/sweeps/{sweep['id']}").json(),
                     lambda s: s["state"] == "completed", 30, "the sweep to complete")
    assert final["counts"]["completed"] == 3

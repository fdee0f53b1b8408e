"""Sweeps end to end: grid expansion, throttle, parent state, cancel, element-wise
dependencies, with a real worker running the children."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from simfarm.common.sweeps import SweepSpec, render_child
from tests.helpers import wait_for

PY = sys.executable
FINAL = ("completed", "failed", "cancelled")


def submit_sweep(http: httpx.Client, **spec: Any) -> dict[str, Any]:
    response = http.post("/api/v1/sweeps", json=spec)
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_sweep(http: httpx.Client, sweep_id: str, *states: str, timeout_s: float = 60) -> Any:
    return wait_for(lambda: http.get(f"/api/v1/sweeps/{sweep_id}").json(),
                    lambda s: s["state"] in (states or FINAL), timeout_s,
                    f"sweep {sweep_id} to reach {states or FINAL}")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda p: (p[0], p[1]))
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def test_grid_expands_with_placeholders_and_environment() -> None:
    spec = SweepSpec(template={"name": "w{w}-{index}", "argv": ["solve", "--w={w}", "{{x}}"]},
                     grid={"w": [1, 2], "mode": ["a", "b"]})
    variations = spec.expand()
    assert variations == [{"w": 1, "mode": "a"}, {"w": 1, "mode": "b"},
                          {"w": 2, "mode": "a"}, {"w": 2, "mode": "b"}]
    child = render_child(spec.template, variations[3], 3)
    assert child.name == "w2-3" and child.argv == ["solve", "--w=2", "{x}"]
    assert child.env == {"SIMFARM_VAR_W": "2", "SIMFARM_VAR_MODE": "b", "SIMFARM_SWEEP_INDEX": "3"}


def test_grid_sweep_with_throttle_never_exceeds_it(farm: httpx.Client) -> None:
    script = "import sys, time; time.sleep(0.3); print('ran', sys.argv[1], sys.argv[2])"
    sweep = submit_sweep(farm, name="grid", throttle=2,
                         grid={"a": [1, 2, 3], "b": ["x", "y", "z", "w"]},
                         template={"argv": [PY, "-c", script, "{a}", "{b}"]})
    assert sweep["size"] == 12 and sweep["throttle"] == 2
    children = sweep["children"]
    assert [c["index"] for c in children] == list(range(12))
    assert children[5]["variation"] == {"a": 2, "b": "y"}
    held = [c for c in children if c["reason"] and c["reason"].startswith("sweep throttle")]
    assert len(held) == 10  # only two may start at once
    done = wait_sweep(farm, sweep["id"])
    assert done["state"] == "completed" and done["counts"]["completed"] == 12
    jobs = [farm.get(f"/api/v1/jobs/{c['job_id']}").json() for c in done["children"]]
    overlap = max_overlap([(j["scheduled_at"], j["finished_at"]) for j in jobs])
    assert overlap == 2, f"{overlap} children were scheduled or running at once"
    assert jobs[5]["spec"]["argv"][-2:] == ["2", "y"]
    # Results gathered per child: each child's output, by index.
    for child in done["children"]:
        events = farm.get(f"/api/v1/jobs/{child['job_id']}/events").json()["events"]
        lines = [e["data"]["line"] for e in events if e["type"] == "log"]
        assert lines == [f"ran {child['variation']['a']} {child['variation']['b']}"]


def test_cancel_parent_cancels_children(farm: httpx.Client) -> None:
    sweep = submit_sweep(farm, throttle=2, variations=[{"n": n} for n in range(6)],
                         template={"argv": [PY, "-c", "import time; time.sleep(60)"]})
    wait_sweep(farm, sweep["id"], "running")
    wait_for(lambda: farm.get(f"/api/v1/sweeps/{sweep['id']}").json()["counts"],
             lambda c: c["running"] == 2, 30, "two children running")
    response = farm.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"]
    done = wait_sweep(farm, sweep["id"], timeout_s=30)
    assert done["state"] == "cancelled"
    assert done["counts"]["cancelled"] == 6


def test_elementwise_dependencies_follow_each_child(farm: httpx.Client) -> None:
    first = submit_sweep(farm, variations=[{"code": 0}, {"code": 3}, {"code": 0}],
                         template={"argv": [PY, "-c", "import sys, time; time.sleep(0.2); "
                                            "sys.exit({code})"]})
    second = submit_sweep(farm, variations=[{"k": 0}, {"k": 1}, {"k": 2}], elementwise=True,
                          depends_on={"after_ok": [first["id"]]}, template={"argv": ["true"]})
    assert all(c["state"] == "pending" for c in second["children"])
    done_first = wait_sweep(farm, first["id"])
    done_second = wait_sweep(farm, second["id"])
    assert [c["state"] for c in done_first["children"]] == ["completed", "failed", "completed"]
    assert [c["state"] for c in done_second["children"]] == ["completed", "cancelled",
                                                             "completed"]
    assert done_second["children"][1]["reason"] == "dependency failed"
    for a, b in zip(done_first["children"], done_second["children"], strict=True):
        job_a = farm.get(f"/api/v1/jobs/{a['job_id']}").json()
        job_b = farm.get(f"/api/v1/jobs/{b['job_id']}").json()
        assert job_b["dependencies"] == {"after_ok": [a["job_id"]]}
        if job_b["started_at"]:
            assert job_b["started_at"] >= job_a["finished_at"]
    # The parent of a sweep with a failed child reports failed.
    assert done_first["state"] == "failed"


def test_bad_sweeps_are_rejected(http: httpx.Client) -> None:
    unknown = http.post("/api/v1/sweeps", json={"grid": {"w": [1]},
                                                "template": {"argv": ["x", "{width}"]}})
    assert unknown.status_code == 422 and "unknown placeholder {width}" in unknown.text
    both = http.post("/api/v1/sweeps", json={"grid": {"w": [1]}, "variations": [{"w": 1}],
                                             "template": {"argv": ["x"]}})
    assert both.status_code == 422
    invalid = http.post("/api/v1/sweeps", json={"variations": [{"c": "0"}, {"c": "-2"}],
                                                "template": {"argv": ["x"],
                                                             "resources": {"cores": "{c}"}}})
    assert invalid.status_code == 422
    assert invalid.json()["fields"][0]["field"] == "template.resources.cores"
    short = http.post("/api/v1/sweeps", json={"variations": [{"k": 1}], "elementwise": True,
                                              "depends_on": {"after_ok": ["nope"]},
                                              "template": {"argv": ["x"]}})
    assert short.status_code == 422
    assert short.json()["fields"][0]["field"] == "depends_on.after_ok.0"


def test_grid_sweep_example_runs(gateway: str, worker: Any) -> None:
    import os
    import subprocess

    from tests.helpers import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update({"SIMFARM_URL": gateway, "PYTHONPATH": str(ROOT)})
    result = subprocess.run([PY, str(ROOT / "examples" / "grid_sweep.py")], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "[0] width=10    er=2.2  completed f0 = 10.106 GHz" in lines
    assert lines[-1] == "sweep completed: 6 of 6 completed; summary completed"


def test_async_facade_sweeps_and_resubmit(gateway: str, worker: Any) -> None:
    import asyncio

    from simfarm.client.async_client import AsyncClient

    async def scenario() -> tuple[str, str, str | None]:
        async with AsyncClient(gateway) as aclient:
            sweep = await aclient.submit_sweep({"variations": [{"n": 1}, {"n": 2}],
                                                "template": {"argv": ["test", "{n}", "=", "1"]}})
            await aclient.wait_all([c.job_id for c in sweep.children], timeout=30)
            done = await aclient.get_sweep(sweep.id)
            again = await aclient.resubmit(done.children[1].job_id)
            return done.state, (await aclient.wait(again.id, timeout=30)).state.value, \
                again.resubmit_of

    state, rerun, origin = asyncio.run(scenario())
    assert (state, rerun) == ("failed", "failed") and origin is not None

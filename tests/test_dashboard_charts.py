"""The dashboard's charts in a real browser (Playwright driving Debian's chromium, one
browser for the module): an HFSS job's convergence drawn live while the FAKE ansysedt
solves, the farm overview, a Touchstone result's S-parameters. The tests read the
points from the charts' own data (uPlot's ``data`` arrays), not just "a canvas exists".
Screenshots go to $SIMFARM_SCREENSHOTS (docs/img/ through scripts/update-screenshots.sh)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Page, expect

from simfarm.common.settings import Settings
from simfarm.common.store.farm_stats import FarmStatsStore
from tests.test_dashboard_browser import browser, page, shots  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
S2P = Path(__file__).parent / "data" / "lowpass_filter.s2p"  # made with scikit-rf


def chart_data(on: Page, name: str) -> list[list[Any]]:
    data = on.evaluate("(name) => { const c = simfarmCharts.get(name); "
                         "return c ? c.data.map(a => Array.from(a)) : null; }", name)
    assert data is not None, f"chart {name} not drawn"
    return list(data)


def test_hfss_convergence_is_drawn_live_while_the_fake_aedt_solves(
    page: Page, hfss_node: Settings, farm: httpx.Client, tmp_path: Path, shots: Path  # noqa: F811
) -> None:
    project = tmp_path / "filter.aedt"  # solved by the FAKE ansysedt of the hfss-node fixture
    project.write_text("$begin 'Setup1'\nMaximumPasses=8\nMaxDeltaS=0.02\n$end 'Setup1'\n")
    # 6 passes asked, but MaxDeltaS is reached at pass 4 (0.5/27 = 0.01852); 4 sweep points.
    # At the end it "exports" the S-parameters (tests/data/lowpass_filter.s2p).
    project.with_suffix(".fake.json").write_text(json.dumps(
        {"PASSES": 6, "SECONDS": 6, "SWEEP_POINTS": 4, "TOUCHSTONE": str(S2P)}))
    job = farm.post("/api/v1/jobs", json={"kind": "hfss", "name": "filter", "hfss": {
        "project_path": str(project), "design_name": "main", "setup_name": "Setup1"}}).json()
    page.goto(f"/ui/jobs/{job['id']}")
    chart = page.locator("#convergence")
    # Live: the chart holds some passes while the job is still running (no reload).
    page.wait_for_function(
        "() => { const c = simfarmCharts.get('convergence'); const el = "
        "document.getElementById('convergence'); return c && el.dataset.state === 'running' "
        "&& c.data[1].some(v => v !== null); }", timeout=20_000)
    assert page.locator("#job-state").get_attribute("data-state") == "running"
    expect(page.locator("#job-state")).to_have_attribute("data-state", "completed")
    expect(chart).to_have_attribute("data-state", "completed")
    expect(page.locator("#sweep-bar-text")).to_contain_text("4 of 4 frequencies")
    passes, deltas, target = chart_data(page, "convergence")
    assert passes == [1, 2, 3, 4]
    assert deltas[0] is None  # pass 1 has no delta S (N/A in the log)
    assert [round(d, 5) for d in deltas[1:]] == [0.16667, 0.05556, 0.01852]
    assert target == [0.02] * 4
    expect(page.locator("#passes-bar-text")).to_contain_text("pass 4 of 8")
    expect(page.locator("#passes-bar-text")).to_contain_text("converged")
    assert int(chart.get_attribute("data-drawn") or 0) > 1  # redrawn as passes came in
    assert page.locator("#convergence table.chart-data tbody tr").count() == 4
    # The exported Touchstone file's S-parameters appear when the job ends, no reload.
    sparams = page.locator("#sparams-0")
    expect(sparams).to_have_attribute("data-file", "main_Setup1.s2p")
    expect(sparams).to_have_attribute("data-points", str(4 * 60))
    freqs, *traces = chart_data(page, "sparams-0")
    assert len(freqs) == 60 and freqs[0] == 0.1 and freqs[-1] == 6.0  # GHz
    labels = page.evaluate("() => simfarmCharts.get('sparams-0').series.map(s => s.label)")
    assert labels[1:] == ["|S11| dB", "|S12| dB", "|S21| dB", "|S22| dB"]
    assert traces[2][0] > -0.1 and traces[2][-1] < -40  # S21: a low-pass filter
    csv_link = sparams.locator("a.csv").get_attribute("href")
    assert csv_link is not None
    assert farm.get(csv_link).text.splitlines()[0].startswith("frequency_hz,S11_db")
    page.screenshot(path=str(shots / "hfss-convergence.png"), full_page=True)
    page.reload()  # rendered by the server this time
    expect(page.locator("#sparams-0")).to_have_attribute("data-points", str(4 * 60))
    page.locator("#sparams-0").screenshot(path=str(shots / "sparameters.png"))
    # The same data for scripts.
    series = farm.get(f"/api/v1/jobs/{job['id']}/progress").json()
    assert [p["pass"] for p in series["passes"]] == [1, 2, 3, 4]
    assert (series["max_passes"], series["target_delta_s"], series["converged"]) == (8, 0.02, True)
    assert series["sweep"]["points"] == ["1GHz", "2GHz", "3GHz", "4GHz"]


def _last(values: list[Any]) -> Any:
    return next((v for v in reversed(values) if v is not None), None)


def seed_history(stats: FarmStatsStore, settings: Settings, nodes: dict[str, int],
                 minutes: int = 55) -> None:
    """An hour of made-up history for the farm's live ``nodes`` (name -> cores), written
    as the sampler writes it and ending two minutes ago, so that the screenshot shows a
    day at the lab rather than a farm that started seconds ago. The test's assertions
    are about what happens after it."""
    now = time.time()
    for i in range(minutes * 3):
        t = math.floor(now - 120 - (minutes * 3 - i) * 20)
        pending = max(0, round(6 * math.sin(i / 14) + 2))
        values: dict[str, float | None] = {
            "jobs_pending": pending, "jobs_pending@priority=5": pending,
            "jobs_finished": i % 4, "jobs_failed": 1 if i % 23 == 0 else 0,
            "wait_p50": 20 + 15 * pending, "wait_p95": 60 + 40 * pending}
        running = busy_total = 0
        for k, (name, cores) in enumerate(sorted(nodes.items())):
            busy = round(cores / 2 + cores / 2 * math.sin(i / 9 + k))
            values[f"cores_busy@node={name}"] = busy
            values[f"cores_free@node={name}"] = cores - busy
            busy_total += busy
            running += min(busy, 2)
        values.update({"cores_busy": busy_total, "cores_free": sum(nodes.values()) - busy_total,
                       "jobs_running": running})
        stats.write("fine", t, values, step=settings.stats_bucket_s, keep=settings.stats_buckets)


def test_overview_charts_follow_the_farm_live(
    page: Page, farm: httpx.Client, shots: Path, redis_client: redis.Redis,  # noqa: F811
    settings: Settings, hfss_node: Settings, tmp_path: Path,
) -> None:
    nodes = {w["name"]: w["cores_total"] for w in farm.get("/api/v1/workers").json()["workers"]
             if w["alive"]}
    seed_history(FarmStatsStore(redis_client, settings.key_prefix), settings, nodes)
    page.goto("/ui/overview")
    expect(page.locator("#live-status")).to_have_text("live")
    page.wait_for_function("() => ['chart-cores', 'chart-finished', 'chart-nodes']"
                           ".every(n => simfarmCharts.get(n))")
    before = sum(v or 0 for v in chart_data(page, "chart-finished")[1])
    assert _last(chart_data(page, "chart-nodes")[1]) is not None
    # A 3-core HFSS solve starts on the AEDT node (the FAKE ansysedt, solving for 30 s):
    # the cores charts show it without a reload (WebSocket).
    project = tmp_path / "busy.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=4\n$end 'Setup1'\n")
    project.with_suffix(".fake.json").write_text(json.dumps({"SECONDS": 30}))
    long = farm.post("/api/v1/jobs", json={"kind": "hfss", "name": "busy", "hfss": {
        "project_path": str(project), "design_name": "main", "setup_name": "Setup1",
        "machine_nodes": [{"hostname": "localhost", "cores": 3, "max_cores": 3}]}}).json()
    assert long["spec"]["resources"]["cores"] == 3, long
    page.wait_for_function(
        "(node) => { const c = simfarmCharts.get('chart-nodes'); const i = c.series.findIndex("
        "s => s.label === node); if (i < 0) return false; const d = c.data[i]; "
        "for (let k = d.length - 1; k >= 0; k--) if (d[k] !== null) return d[k] >= 3; "
        "return false; }", arg="hfss-node", timeout=20_000)
    assert farm.get(f"/api/v1/jobs/{long['id']}").json()["node"] == "hfss-node"
    assert _last(chart_data(page, "chart-cores")[1]) >= 3  # the farm's total moved too
    # Three quick jobs finish: the finished chart counts them (recorded per 1 s bucket).
    quick = [farm.post("/api/v1/jobs", json={"argv": ["true"], "name": f"q{i}"}).json()["id"]
             for i in range(3)]
    page.wait_for_function(
        "(n) => simfarmCharts.get('chart-finished').data[1]"
        ".reduce((a, v) => a + (v || 0), 0) >= n", arg=before + len(quick), timeout=30_000)
    pending, running = chart_data(page, "chart-jobs")[1:3]
    assert _last(running) is not None and _last(pending) is not None
    assert page.locator("#chart-cores table.chart-data tbody tr").count() >= 2
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    farm.post(f"/api/v1/jobs/{long['id']}/cancel")

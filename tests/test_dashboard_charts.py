"""The dashboard's charts in a real browser (Playwright driving Debian's chromium, one
browser for the module): an HFSS job's convergence drawn live while the FAKE ansysedt
solves, the farm overview, a Touchstone result's S-parameters. The tests read the
points from the charts' own data (uPlot's ``data`` arrays), not just "a canvas exists".
Screenshots go to $SIMFARM_SCREENSHOTS (docs/img/ through scripts/update-screenshots.sh)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from simfarm.common.settings import Settings
from tests.test_dashboard_browser import browser, page, shots  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


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
    project.with_suffix(".fake.json").write_text(json.dumps(
        {"PASSES": 6, "SECONDS": 6, "SWEEP_POINTS": 4}))
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
    page.screenshot(path=str(shots / "hfss-convergence.png"), full_page=True)
    # The same data for scripts.
    series = farm.get(f"/api/v1/jobs/{job['id']}/progress").json()
    assert [p["pass"] for p in series["passes"]] == [1, 2, 3, 4]
    assert (series["max_passes"], series["target_delta_s"], series["converged"]) == (8, 0.02, True)
    assert series["sweep"]["points"] == ["1GHz", "2GHz", "3GHz", "4GHz"]

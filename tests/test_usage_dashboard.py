"""The dashboard's usage page in a real browser (Playwright driving Debian's chromium, on
the session's farm): core-hours per UTC day per account drawn with uPlot, read back from
the chart's own data and compared with ``GET /api/v1/usage``; the window's totals; the
same by node; the nav links to it. Screenshot: $SIMFARM_SCREENSHOTS/usage.png."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.helpers import wait_for
from tests.test_dashboard_browser import browser, page, shots  # noqa: F401 (fixtures)
from tests.test_dashboard_charts import chart_data

pytestmark = pytest.mark.browser


def _idle(farm: httpx.Client) -> None:
    """Wait until no job of earlier tests is still placed or running (their ends would
    change the report between the page's read and the test's)."""
    def busy() -> int:
        return sum(len(farm.get("/api/v1/jobs", params={"state": s, "limit": 10}).json()["jobs"])
                   for s in ("scheduled", "running"))
    wait_for(busy, lambda n: n == 0, 60, "the farm to be idle")


def test_usage_page_charts_core_hours_per_account_per_day(
    page: Page, farm: httpx.Client, shots: Path,  # noqa: F811
) -> None:
    _idle(farm)
    ids = [farm.post("/api/v1/jobs", json={"argv": ["sleep", "0.5"], "name": f"u{i}",
                                           "resources": {"cores": 2}}).json()["id"]
           for i in range(2)]
    for job_id in ids:
        wait_for(lambda j=job_id: farm.get(f"/api/v1/jobs/{j}").json()["state"],  # type: ignore[misc]
                 lambda s: s == "completed", 30, f"job {job_id}")
    report = farm.get("/api/v1/usage", params={"by": "account", "bucket": "day",
                                               "since": "30d"}).json()
    page.goto("/ui/usage")
    expect(page.locator("nav a.here")).to_have_text("Usage")
    page.wait_for_function("() => simfarmCharts.get('usage')")
    days, *series = chart_data(page, "usage")
    labels = page.evaluate("() => simfarmCharts.get('usage').series.slice(1).map(s => s.label)")
    assert len(days) == 31  # the 30-day window: today and the 30 days before
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    expected = {r["name"]: r["core_seconds"] / 3600 for r in report["rows"]
                if r["day"] == datetime.fromtimestamp(today, UTC).date().isoformat()}
    assert set(labels) == set(expected) and expected
    for label, ys in zip(labels, series, strict=True):
        assert ys[days.index(today)] == pytest.approx(expected[label], rel=1e-9)
        assert ys[days.index(today)] >= 2 * 2 * 0.5 / 3600  # at least the two jobs here
    totals = page.locator("#usage-totals tbody tr")
    expect(totals).to_have_count(len(expected))
    # by node: the same page, another dimension
    page.select_option("select[name=by]", "node")
    page.wait_for_function("() => simfarmCharts.get('usage').series.slice(1)"
                           ".some(s => s.label === 'test-node')")
    expect(page.locator("#usage-json")).to_have_attribute("href", "/api/v1/usage?bucket=day"
                                                          "&by=node&since=30d")
    page.screenshot(path=str(shots / "usage.png"), full_page=True)

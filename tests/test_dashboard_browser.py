"""The dashboard in a real browser (Playwright driving Debian's chromium): submit from the
form and watch the job reach `completed` live, see the API's validation messages, cancel
another job from the jobs table. Screenshots go to $SIMFARM_SCREENSHOTS (the docs use
the ones `scripts/update-screenshots.sh` writes to docs/img/)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from simfarm.common.settings import Settings

pytestmark = pytest.mark.browser
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def chromium_path() -> str:
    path = os.environ.get("SIMFARM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("chromium is not installed; run scripts/install-system-deps.sh")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, farm: httpx.Client, gateway: str) -> Iterator[Page]:
    context = browser.new_context(base_url=gateway, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SIMFARM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_submit_from_the_form_and_watch_it_complete_live(page: Page, shots: Path) -> None:
    page.goto("/ui/submit")
    page.fill("input[name=name]", "browser-demo")
    page.fill("textarea[name=argv]", "sh\n-c\necho solving; sleep 2; echo browser-done")
    page.fill("input[name=priority]", "7")
    page.screenshot(path=str(shots / "submit-form.png"), full_page=True)
    page.click("#submit-button")
    page.wait_for_url("**/ui/jobs/*")
    job_id = page.url.rsplit("/", 1)[-1]
    state = page.locator("#job-state")
    assert state.get_attribute("data-state") in ("pending", "scheduled", "running")
    # No reload from here on: the page follows the job over the WebSocket.
    expect(page.locator("#live-status")).to_have_text("live")
    expect(state).to_have_attribute("data-state", "completed")
    expect(page.locator("#log")).to_contain_text("browser-done")
    expect(page.locator("#f-exit")).to_have_text("0")
    states = page.locator("#timeline .state").all_inner_texts()
    assert states == ["pending", "scheduled", "running", "completed"]
    assert page.locator("#f-node").inner_text() != "—"
    page.screenshot(path=str(shots / "job-page.png"), full_page=True)
    assert job_id in page.locator("h1").inner_text()


def test_form_shows_the_api_validation_messages(page: Page, shots: Path) -> None:
    page.goto("/ui/submit")
    page.fill("input[name=priority]", "99")
    page.fill("input[name=cores]", "0")
    page.fill("textarea[name=env]", "1BAD=x")
    page.fill("textarea[name=argv]", "true")
    page.click("#submit-button")
    priority_error = page.locator('.field-error[data-for="priority"]')
    expect(priority_error).to_have_text("priority: Input should be less than or equal to 10")
    expect(page.locator('.field-error[data-for="resources.cores"]')).to_contain_text(
        "greater than or equal to 1")
    expect(page.locator('.field-error[data-for="env"]')).to_contain_text("1BAD")
    expect(page.locator("input[name=priority]")).to_have_class("invalid")
    assert page.url.endswith("/ui/submit")  # nothing was submitted
    page.screenshot(path=str(shots / "submit-errors.png"), full_page=True)


def test_reprioritise_and_cancel_from_the_jobs_table(
    page: Page, farm: httpx.Client, shots: Path
) -> None:
    job = farm.post("/api/v1/jobs", json={"argv": ["sleep", "60"], "name": "to-cancel"}).json()
    waiting = farm.post("/api/v1/jobs", json={
        "argv": ["true"], "name": "waits-for-it", "priority": 2,
        "depends_on": {"after_any": [job["id"]]}}).json()
    assert waiting["state"] == "pending"
    page.goto("/")
    row = page.locator(f'tr[data-job="{job["id"]}"]')
    expect(row).to_be_visible()
    page.screenshot(path=str(shots / "jobs.png"), full_page=True)
    other = page.locator(f'tr[data-job="{waiting["id"]}"]')
    other.locator("input.prio").fill("9")
    other.locator("button.set-priority").click()
    expect(page.locator("#flash")).to_contain_text("priority 9")
    assert farm.get(f"/api/v1/jobs/{waiting['id']}").json()["priority"] == 9
    other.locator("input.prio").fill("11")
    other.locator("button.set-priority").click()
    expect(page.locator("#flash")).to_contain_text("priority: Input should be less than")
    row.locator("button.cancel").click()
    expect(row.locator(".state")).to_have_attribute("data-state", "cancelled")
    assert farm.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "cancelled"
    page.goto("/ui/workers")
    expect(page.locator('tr[data-node="test-node"]')).to_be_visible()
    page.screenshot(path=str(shots / "workers.png"), full_page=True)


def test_swagger_ui_renders_the_openapi_document(page: Page, shots: Path) -> None:
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("simfarm gateway")
    expect(page.locator('.opblock-summary-path[data-path="/api/v1/jobs"]').first).to_be_visible()
    page.screenshot(path=str(shots / "api-docs.png"))


def test_hfss_job_from_the_form_runs_on_the_aedt_node(
    page: Page, hfss_node: Settings, farm: httpx.Client, tmp_path: Path
) -> None:
    project = tmp_path / "board.aedt"  # solved by the FAKE ansysedt of the hfss-node fixture
    project.write_text("$begin 'Setup1'\nMaximumPasses=8\n$end 'Setup1'\n")
    page.goto("/ui/submit")
    page.check("input[name=kind][value=hfss]")
    expect(page.locator("textarea[name=argv]")).to_be_hidden()
    page.fill("input[name=name]", "board-from-form")
    page.fill("input[name=project_path]", str(project))
    page.fill("input[name=design_name]", "main")
    page.fill("input[name=setup_name]", "Setup1")
    page.fill("input[name=hfss_cores]", "2")
    page.click("#submit-button")
    page.wait_for_url("**/ui/jobs/*")
    expect(page.locator("#job-state")).to_have_attribute("data-state", "completed")
    expect(page.locator("#f-node")).to_have_text("hfss-node")
    expect(page.locator("#f-progress")).to_contain_text(re.compile(r'"converged": ?true'))
    job = farm.get(f"/api/v1/jobs/{page.url.rsplit('/', 1)[-1]}").json()
    assert job["spec"]["kind"] == "hfss" and job["spec"]["hfss"]["design_name"] == "main"

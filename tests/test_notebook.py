"""examples/notebook.ipynb executed in a real Jupyter kernel (nbclient) against the test
farm: jobs submitted and waited for with ``progress=True`` (tqdm), jobs rendered as HTML
tables, an HFSS job's convergence plotted with matplotlib."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

from simfarm.client import AsyncClient
from simfarm.common.settings import Settings
from tests.helpers import ROOT


def test_notebook_submits_waits_with_a_progress_bar_and_renders_jobs(
    gateway: str, worker: subprocess.Popen[bytes], hfss_node: Settings, http: httpx.Client,
    tmp_path: Path,
) -> None:
    project = tmp_path / "nb.aedt"  # solved by the FAKE ansysedt of the hfss-node fixture
    project.write_text("$begin 'Setup1'\nMaximumPasses=8\nMaxDeltaS=0.02\n$end 'Setup1'\n")
    notebook = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = f"URL = {gateway!r}\nPROJECT = {str(project)!r}"
    NotebookClient(notebook, timeout=90, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not any(o.get("output_type") == "error" for o in c.outputs) for c in code), [
        o for c in code for o in c.outputs if o.get("output_type") == "error"]
    # wait_all(progress=True): a tqdm bar that ends at 3/3 with the states counted ...
    waited = next(c for c in code if "wait_all" in c.source)
    bar = "".join(o.get("text", "") for o in waited.outputs if o.get("output_type") == "stream")
    widget = [o for o in waited.outputs if "application/vnd.jupyter.widget-view+json"
              in o.get("data", {})]
    assert "3/3" in bar or widget, waited.outputs
    if bar:
        assert "completed 3" in bar
    # ... and the jobs it returns as one HTML table.
    table = next(o["data"]["text/html"] for o in waited.outputs
                 if "text/html" in o.get("data", {}))
    assert "3 job(s): 3 completed" in table and table.count("<tr>") == 4
    cell = next(c for c in code if c.source.strip() == "done[0]")
    one = next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
    assert one.startswith("<table") and ">completed</b>" in one and ">exit code</th>" in one
    # The HFSS job: waited for with a bar, its convergence drawn as a PNG figure.
    figure = code[-1].outputs
    assert any("image/png" in o.get("data", {}) for o in figure), figure
    hfss_id = next(j["id"] for j in http.get("/api/v1/jobs", params={"limit": 20}).json()["jobs"]
                   if j["spec"].get("name") == "notebook-hfss")
    series = http.get(f"/api/v1/jobs/{hfss_id}/progress").json()
    assert series["converged"] is True and len(series["passes"]) == 3
    json.dumps(notebook)  # the executed notebook is still valid JSON


def test_async_wait_all_shows_the_states_counted_in_a_terminal(
    gateway: str, worker: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str],
) -> None:
    async def scenario() -> list[str]:
        async with AsyncClient(gateway) as client:
            ok = await client.submit(["true"])
            bad = await client.submit(["false"])
            done = await client.wait_all([ok.id, bad.id], progress=True)
            assert "2 job(s): 1 completed, 1 failed" in done._repr_html_()
            return [j.state.value for j in done]

    assert asyncio.run(scenario()) == ["completed", "failed"]
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in bar if "2/2" in line][-1]
    assert "completed 1 · failed 1" in last

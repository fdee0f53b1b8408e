"""Touchstone results: the summary the worker keeps with the job (scikit-rf), and
``GET /api/v1/jobs/{id}/sparameters`` for a shared-path job on the test farm.

tests/data/lowpass_filter.s2p was generated with scikit-rf by
tests/data/make_lowpass_s2p.py: a 5th-order LC low-pass filter (50 ohm), 0.1-6 GHz."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import numpy as np
import skrf

from simfarm.common.touchstone import MAX_POINTS, summarize
from tests.helpers import wait_for

S2P = Path(__file__).parent / "data" / "lowpass_filter.s2p"


def test_summary_of_a_two_port_filter() -> None:
    summary = summarize(S2P, "lowpass_filter.s2p")
    assert summary.error is None
    assert (summary.ports, summary.points, summary.z0) == (2, 60, 50.0)
    assert list(summary.db) == ["S11", "S12", "S21", "S22"]
    assert summary.frequency_hz[0] == 0.1e9 and summary.frequency_hz[-1] == 6e9
    assert summary.db["S21"][0] > -0.1  # passes at 100 MHz
    assert summary.db["S21"][-1] < -40  # stops at 6 GHz
    reference = skrf.Network(str(S2P))
    assert summary.db["S11"][10] == round(float(reference.s_db[10, 0, 0]), 4)


def test_summary_bounds_a_large_file_and_reports_a_bad_one(tmp_path: Path) -> None:
    freq = skrf.Frequency(1, 20, 3000, unit="GHz")
    s = np.full((3000, 6, 6), 0.1 + 0.05j)
    skrf.Network(frequency=freq, s=s, name="six").write_touchstone(str(tmp_path / "six"))
    summary = summarize(tmp_path / "six.s6p", "six.s6p")
    assert (summary.ports, summary.points, len(summary.frequency_hz)) == (6, 3000, MAX_POINTS)
    # Beyond 4 ports: reflections and transmissions from port 1 only.
    assert sorted(summary.db) == sorted({f"S{i}{i}" for i in range(1, 7)}
                                        | {f"S{i}1" for i in range(1, 7)})
    (tmp_path / "bad.s2p").write_text("! not numbers\n# GHz S MA R 50\n1 x y\n")
    bad = summarize(tmp_path / "bad.s2p", "bad.s2p")
    assert bad.error is not None and bad.error.startswith("not a readable Touchstone file")


def test_shared_path_job_keeps_its_sparameters(farm: httpx.Client, tmp_path: Path) -> None:
    job = farm.post("/api/v1/jobs", json={
        "argv": ["cp", str(S2P), "filter.s2p"], "cwd": str(tmp_path), "name": "export"}).json()
    done = wait_for(lambda: farm.get(f"/api/v1/jobs/{job['id']}").json(),
                    lambda j: j["state"] in ("completed", "failed"), 30, "job to end")
    assert done["state"] == "completed", done
    body = farm.get(f"/api/v1/jobs/{job['id']}/sparameters").json()
    assert [f["name"] for f in body["files"]] == ["filter.s2p"]
    assert body["files"][0]["ports"] == 2 and len(body["files"][0]["db"]["S21"]) == 60
    download = farm.get(f"/api/v1/jobs/{job['id']}/sparameters",
                        params={"file": "filter.s2p", "format": "csv"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert 'filename="filter.s2p.csv"' in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0] == ["frequency_hz", "S11_db", "S12_db", "S21_db", "S22_db"]
    assert len(rows) == 61 and float(rows[1][0]) == 0.1e9
    missing = farm.get(f"/api/v1/jobs/{job['id']}/sparameters", params={"file": "x.s2p"})
    assert missing.status_code == 404
    no_file = farm.get(f"/api/v1/jobs/{job['id']}/sparameters", params={"format": "csv"})
    assert no_file.status_code == 422 and no_file.json()["fields"][0]["field"] == "file"

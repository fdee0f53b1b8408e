"""``GET /api/v1/jobs/{id}/progress``: the convergence history as a series."""

from __future__ import annotations

import httpx

from simfarm.common.convergence import from_events
from simfarm.common.models import JobEvent
from simfarm.common.states import JobState
from simfarm.workers.aedt_log import ProgressTracker

T = "(10:02:11 AM  Mar 03, 2025)"
LINES = [
    f"[info] Project:p, S1 : [PROFILE] Adaptive Pass 1 : Frequency: 5GHz {T}",
    f"[info] Project:p, S1 : [CONVERGE] Pass Number:  1;  Solved Elements:  900;  "
    f"Max Mag. Delta S:  N/A;  Delta Output Var:  N/A;   {T}",
    f"[info] Project:p, S1 : [PROFILE] Adaptive Pass 2 : Frequency: 5GHz {T}",
    f"[info] Project:p, S1 : [CONVERGE] Pass Number:  2;  Solved Elements:  1400;  "
    f"Max Mag. Delta S:  0.12;  Delta Output Var:  N/A;   {T}",
    f"[info] Project:p, S1 : [PROFILE] Adaptive Pass 3 : Frequency: 5GHz {T}",
    f"[info] Project:p, S1 : [CONVERGE] Pass Number:  3;  Solved Elements:  2000;  "
    f"Max Mag. Delta S:  0.015;  Delta Output Var:  N/A;   {T}",
    f"[info] Project:p, S1 : [PROFILE]        Adaptive Passes converged {T}",
    f"[info] Project:p, S1 : [PROFILE]        From 1GHz to 3GHz, 3 Frequencies {T}",
    f"[info] Project:p, S1 : [PROFILE] Frequency - 1GHz : Elapsed time : 00:00:01 {T}",
    f"[info] Project:p, S1 : [PROFILE] Frequency - 2GHz : Elapsed time : 00:00:01 {T}",
]


def test_series_rebuilt_from_progress_events_matches_the_stored_one() -> None:
    """Jobs that ran before the worker stored the series get the same answer from
    their progress events (a new pass's event still carries the last pass's delta S)."""
    tracker = ProgressTracker(max_passes=10, target_delta_s=0.02)
    events = []
    for n, line in enumerate(LINES):
        if tracker.feed(line):
            events.append(JobEvent(id=f"{n}-0", job_id="j", type="progress", ts=0.0,
                                   data=tracker.as_dict()))
    rebuilt = from_events("j", JobState.COMPLETED, events, tracker.as_dict())
    assert rebuilt.deltas() == [(2, 0.12), (3, 0.015)]
    assert [p.pass_ for p in rebuilt.passes] == [1, 2, 3]
    assert (rebuilt.max_passes, rebuilt.target_delta_s, rebuilt.converged) == (10, 0.02, True)
    assert rebuilt.sweep is not None and rebuilt.sweep.points == ["1GHz", "2GHz"]
    stored = tracker.series()
    assert [(p["pass"], p["delta_s"]) for p in stored["passes"]] == [
        (p.pass_, p.delta_s) for p in rebuilt.passes]


def test_progress_of_a_command_job_is_an_empty_series(farm: httpx.Client) -> None:
    job = farm.post("/api/v1/jobs", json={"argv": ["true"]}).json()
    body = farm.get(f"/api/v1/jobs/{job['id']}/progress").json()
    assert body["job_id"] == job["id"] and body["passes"] == [] and body["sweep"] is None
    missing = farm.get("/api/v1/jobs/nosuchjob/progress")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"

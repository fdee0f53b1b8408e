"""An HFSS job's convergence history as the API reports it (``GET /api/v1/jobs/{id}/
progress``), the job page draws it and ``simfarm.notebook.plot_convergence`` plots it.

The worker keeps the whole history on the job (``convergence``, see
:meth:`simfarm.workers.aedt_log.ProgressTracker.series`); for jobs that ran before it
did, :func:`from_events` rebuilds it from the job's progress events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from simfarm.common.models import JobEvent
from simfarm.common.states import JobState


class AdaptivePass(BaseModel):
    """One adaptive pass of the solver."""

    pass_: int = Field(alias="pass", serialization_alias="pass", description="pass number")
    delta_s: float | None = Field(
        default=None, description="Max Mag. Delta S after the pass (none for pass 1)")
    frequency: str | None = Field(default=None, description="adaptive frequency, e.g. `5GHz`")
    elements: int | None = Field(default=None, description="solved mesh elements")

    model_config = {"populate_by_name": True}


class SweepProgress(BaseModel):
    """The frequency sweep after the adaptive passes."""

    type: str | None = Field(default=None, description="`Interpolating`, `Discrete` or `Fast`")
    frequencies: int | None = Field(default=None, description="frequencies to solve")
    solved: int = Field(default=0, description="frequencies solved so far")
    points: list[str] = Field(default_factory=list, description="solved frequencies, in order")


class Convergence(BaseModel):
    """Adaptive passes against the setup's target, then the sweep."""

    job_id: str
    state: JobState
    phase: str | None = Field(default=None, description="`starting`, `adaptive`, `sweep`, `done`")
    max_passes: int | None = Field(default=None, description="the setup's MaximumPasses")
    target_delta_s: float | None = Field(
        default=None, description="the setup's MaxDeltaS (convergence target)")
    converged: bool | None = None
    passes: list[AdaptivePass] = Field(default_factory=list)
    sweep: SweepProgress | None = None
    progress: dict[str, Any] | None = Field(
        default=None, description="the latest progress record (as in the job)")

    def deltas(self) -> list[tuple[int, float]]:
        """``(pass, delta S)`` of the passes that have one."""
        return [(p.pass_, p.delta_s) for p in self.passes if p.delta_s is not None]


def from_series(job_id: str, state: JobState, series: dict[str, Any],
                progress: dict[str, Any] | None) -> Convergence:
    """The API body from the worker's stored series and the latest progress record."""
    latest = progress or {}
    return Convergence(
        job_id=job_id, state=state, phase=latest.get("phase"),
        max_passes=series.get("max_passes", latest.get("max_passes")),
        target_delta_s=series.get("target_delta_s", latest.get("target_delta_s")),
        converged=series.get("converged", latest.get("converged")),
        passes=[AdaptivePass.model_validate(p) for p in series.get("passes") or []],
        sweep=SweepProgress.model_validate(series["sweep"]) if series.get("sweep") else None,
        progress=progress,
    )


def from_events(job_id: str, state: JobState, events: Iterable[JobEvent],
                progress: dict[str, Any] | None) -> Convergence:
    """The same, rebuilt from progress events (jobs without a stored series)."""
    passes: dict[int, dict[str, Any]] = {}
    points: list[str] = []
    for event in events:
        if event.type != "progress":
            continue
        data = event.data
        number = data.get("adaptive_pass")
        if isinstance(number, int):
            if number not in passes:  # the pass starts: delta_s is still the last pass's
                passes[number] = {"pass": number, "frequency": data.get("adaptive_frequency")}
            elif data.get("delta_s") is not None:
                passes[number]["delta_s"] = data["delta_s"]
        last = data.get("last_frequency")
        if last and (not points or points[-1] != last) and data.get("sweep_solved", 0) > len(
                points):
            points.append(str(last))
    latest = progress or {}
    sweep = None
    if latest.get("sweep") or points:
        sweep = {"type": latest.get("sweep"), "frequencies": latest.get("sweep_frequencies"),
                 "solved": latest.get("sweep_solved") or len(points), "points": points}
    series = {"passes": [passes[n] for n in sorted(passes)], "sweep": sweep}
    return from_series(job_id, state, series, progress)

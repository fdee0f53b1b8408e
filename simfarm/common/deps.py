"""Job dependencies: ``after_ok``, ``after_any`` and ``after_failed`` on other jobs.

A dependent job is held ``pending`` until every condition holds; when one can never
hold (``after_ok`` on a job that failed, say) the job ends ``cancelled`` with the reason
``dependency failed``. Conditions follow SLURM's ``afterok``/``afterany``/``afternotok``:

* ``after_ok``: the dependency ``completed``;
* ``after_any``: the dependency ended, whatever its state;
* ``after_failed``: the dependency ended without completing (``failed`` or
  ``cancelled``).

A dependency that no longer exists (expired by retention) can never be checked, so it
counts as never satisfied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simfarm.common.states import JobState

MAX_DEPENDENCIES = 1000
DEPENDENCY_FAILED = "dependency failed"
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")

Condition = Literal["after_ok", "after_any", "after_failed"]
CONDITIONS: tuple[Condition, ...] = ("after_ok", "after_any", "after_failed")


class Dependencies(BaseModel):
    """Jobs (or sweeps) this job waits for. A sweep id stands for all its children, or,
    for a sweep submitted with ``elementwise``, for its child with the same index."""

    model_config = ConfigDict(extra="forbid")

    after_ok: list[str] = Field(default_factory=list, description="start after these completed")
    after_any: list[str] = Field(default_factory=list, description="start after these ended")
    after_failed: list[str] = Field(
        default_factory=list, description="start after these failed or were cancelled"
    )

    @field_validator("after_ok", "after_any", "after_failed")
    @classmethod
    def _check_ids(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_DEPENDENCIES:
            raise ValueError(f"at most {MAX_DEPENDENCIES} ids")
        for item in value:
            if not _ID.match(item):
                raise ValueError(f"{item[:64]!r} is not a job or sweep id")
        return list(dict.fromkeys(value))

    def by_condition(self) -> dict[Condition, list[str]]:
        """The non-empty conditions and their ids."""
        out: dict[Condition, list[str]] = {}
        for name in CONDITIONS:
            ids = getattr(self, name)
            if ids:
                out[name] = list(ids)
        return out

    def ids(self) -> list[str]:
        """Every id named, once."""
        return list(dict.fromkeys(i for ids in self.by_condition().values() for i in ids))

    def is_empty(self) -> bool:
        """True when the job waits for nothing."""
        return not self.ids()


@dataclass(frozen=True)
class Verdict:
    """Where a dependent job stands: ``ready`` to start, ``wait``, or ``never``."""

    status: Literal["ready", "wait", "never"]
    detail: str = ""
    waiting: int = 0


def _met(condition: Condition, state: JobState) -> bool | None:
    """True when met, False when it can never be met, None while undecided."""
    if not state.final:
        return None
    if condition == "after_ok":
        return state is JobState.COMPLETED
    if condition == "after_failed":
        return state is not JobState.COMPLETED
    return True


def verdict(
    resolved: Mapping[str, list[str]], states: Mapping[str, JobState | None]
) -> Verdict:
    """Judge resolved dependencies (condition → job ids) against the jobs' states
    (``None`` for a job that no longer exists)."""
    waiting = 0
    for condition, ids in resolved.items():
        for job_id in ids:
            state = states.get(job_id)
            if state is None:
                return Verdict("never", f"job {job_id} no longer exists ({condition})")
            met = _met(condition, state)  # type: ignore[arg-type]
            if met is False:
                return Verdict("never", f"job {job_id} ended {state.value} ({condition})")
            if met is None:
                waiting += 1
    if waiting:
        return Verdict("wait", f"waiting for {waiting} dependenc{'y' if waiting == 1 else 'ies'}",
                       waiting)
    return Verdict("ready")

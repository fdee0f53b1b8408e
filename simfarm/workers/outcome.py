"""How a run ended, as reported by a runner to the task that finalises the job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simfarm.common.states import JobState


@dataclass
class Outcome:
    """The end of one attempt of a job.

    ``state`` is the final state to record, or ``None`` when the worker is stopping and
    the job must go back to ``pending`` for another worker; ``timed_out``: stopped at
    the job's time limit.
    """

    state: JobState | None
    exit_code: int | None = None
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def interrupted(self) -> bool:
        return self.state is None

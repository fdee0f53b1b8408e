"""How a run ended, as reported by a runner to the task that finalises the job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simfarm.common.states import JobState


@dataclass
class Outcome:
    """The end of one attempt of a job.

    ``state`` is the final state to record, or ``None`` when the worker is stopping and
    the job must go back to ``pending`` for another worker — or, ``handed_back``, stays
    as it is with its cluster job, for another worker of the cluster to follow;
    ``timed_out``: stopped at the job's time limit.
    """

    state: JobState | None
    exit_code: int | None = None
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    handed_back: bool = False

    @property
    def interrupted(self) -> bool:
        return self.state is None

    def recorded(self) -> tuple[JobState, dict[str, Any], dict[str, Any]]:
        """What recording it writes: the target state, the job's fields and the state
        event's data (an interrupted attempt goes back to ``pending`` with its reason)."""
        fields = dict(self.fields)
        if self.interrupted:
            fields["reason"] = self.reason
            return JobState.PENDING, fields, {"exit_code": self.exit_code,
                                              "reason": self.reason}
        assert self.state is not None
        if self.exit_code is not None:
            fields["exit_code"] = self.exit_code
        if self.reason:
            fields["reason"] = self.reason
            if self.state is JobState.FAILED:
                fields["error"] = self.reason
        return self.state, fields, {"exit_code": self.exit_code, "reason": self.reason}


def exit_status_outcome(code: int) -> Outcome:
    """The outcome of a program that ended by itself with exit status ``code``
    (negative: killed by that signal)."""
    if code == 0:
        return Outcome(JobState.COMPLETED, exit_code=0)
    return Outcome(JobState.FAILED, exit_code=code, reason=f"exit code {code}")

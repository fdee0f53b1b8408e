"""The job state machine shared by every layer (store, gateway, workers, clients)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Lifecycle state of a job.

    ``pending → scheduled → running → completed | failed | cancelled``; ``pending`` and
    ``scheduled`` may also go to ``cancelled`` or ``failed``; a job forwarded to a cluster
    goes ``scheduled → completed`` when it ran between two looks at the cluster queue;
    ``scheduled``/``running`` go back to ``pending`` only when their worker is lost (or
    stops) and the retry budget allows it. A user or admin may hold a pending job:
    ``pending ⇄ held``, and ``held → cancelled``; a held job is never dispatched and
    keeps its rank.
    """

    PENDING = "pending"
    HELD = "held"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True for states a job never leaves."""
        return self in FINAL_STATES

    @property
    def order(self) -> int:
        """Position in the lifecycle; an update may never move a job to a lower order
        except through the explicit lost-worker requeue transition."""
        return _ORDER[self]

    def can_go_to(self, target: JobState) -> bool:
        """Whether ``self → target`` is an allowed transition."""
        return target in TRANSITIONS[self]

    def __str__(self) -> str:
        return self.value


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

_ORDER = {
    JobState.PENDING: 0,
    JobState.HELD: 0,
    JobState.SCHEDULED: 1,
    JobState.RUNNING: 2,
    JobState.COMPLETED: 3,
    JobState.FAILED: 3,
    JobState.CANCELLED: 3,
}

#: Every state change simfarm makes, and the only ones: ``JobStore.transition`` checks
#: against this (a caller may narrow it, never widen it). A code path that needs another
#: edge adds it here, with its reason, and to docs/concepts.md.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.SCHEDULED, JobState.CANCELLED, JobState.FAILED,
                                 # someone holds it (POST /api/v1/jobs/{id}/hold)
                                 JobState.HELD}),
    # released (back in line at the rank it had) or cancelled; never dispatched
    JobState.HELD: frozenset({JobState.PENDING, JobState.CANCELLED}),
    JobState.SCHEDULED: frozenset({
        JobState.RUNNING, JobState.CANCELLED, JobState.PENDING, JobState.FAILED,
        # a cluster job seen only once it was over (it ran between two polls) ends from
        # scheduled: the cluster runner keeps the job scheduled while it is queued there
        JobState.COMPLETED,
        # a cluster job whose worker was lost or handed it back goes, as a new attempt,
        # to another worker of its cluster, which follows it (takeover)
        JobState.SCHEDULED,
    }),
    JobState.RUNNING: frozenset(
        {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.PENDING,
         # takeover of a running cluster job, as from scheduled
         JobState.SCHEDULED}
    ),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def sources_of(target: JobState) -> list[JobState]:
    """States from which ``target`` may be reached."""
    return [s for s, targets in TRANSITIONS.items() if target in targets]

"""The ``held`` state in the store (fakeredis: pure store behaviour): ``pending ⇄ held``
and ``held → cancelled`` only, a held job keeps its rank, a gated job held and released
is still gated."""

from __future__ import annotations

import fakeredis
import pytest

from simfarm.common.errors import IllegalTransition
from simfarm.common.models import JobSpec
from simfarm.common.states import TRANSITIONS, JobState
from simfarm.common.store import JobStore
from simfarm.common.store.jobs import GATED_BAND


@pytest.fixture
def jobs() -> JobStore:
    return JobStore(fakeredis.FakeRedis(), "t:")


def _score(jobs: JobStore, state: JobState, job_id: str) -> float | None:
    return jobs.connection.zscore(jobs.keys.state(state.value), job_id)  # type: ignore[return-value]


def test_the_state_machine_allows_hold_release_and_cancel_only() -> None:
    assert JobState.PENDING.can_go_to(JobState.HELD)
    assert TRANSITIONS[JobState.HELD] == {JobState.PENDING, JobState.CANCELLED}
    assert not JobState.HELD.final and JobState.HELD.order == JobState.PENDING.order


def test_a_held_job_leaves_the_queue_and_comes_back_at_its_rank(jobs: JobStore) -> None:
    first, _ = jobs.create(JobSpec(argv=["true"], priority=5))
    second, _ = jobs.create(JobSpec(argv=["true"], priority=5))
    rank = _score(jobs, JobState.PENDING, first.id)
    assert jobs.transition_many([first.id], JobState.HELD, sources=[JobState.PENDING],
                                fields={"reason": "held by ann", "held_by": "ann"}) == [first.id]
    held = jobs.get(first.id)
    assert (held.state, held.reason, held.held_by) == (JobState.HELD, "held by ann", "ann")
    assert jobs.pending_ids() == [second.id]
    assert _score(jobs, JobState.HELD, first.id) == rank
    assert jobs.counts()["held"] == 1
    jobs.set_priority(first.id, 9)  # still held, re-ranked
    assert jobs.get(first.id).state is JobState.HELD and jobs.pending_ids() == [second.id]
    jobs.set_priority(first.id, 5)
    assert jobs.transition_many([first.id], JobState.PENDING, sources=[JobState.HELD],
                                fields={"reason": None, "held_by": None}) == [first.id]
    back = jobs.get(first.id)
    assert (back.state, back.reason, back.held_by) == (JobState.PENDING, None, None)
    assert jobs.pending_ids() == [first.id, second.id]  # its old place, ahead of second
    events = [(e.data.get("from"), e.data.get("to")) for e in jobs.events(first.id)
              if e.type == "state"]
    assert events == [(None, "pending"), ("pending", "held"), ("held", "pending")]


def test_a_held_job_is_never_scheduled_and_can_be_cancelled(jobs: JobStore) -> None:
    job, _ = jobs.create(JobSpec(argv=["true"]))
    jobs.transition(job.id, JobState.HELD)
    for target in (JobState.SCHEDULED, JobState.RUNNING, JobState.FAILED):
        with pytest.raises(IllegalTransition):  # even when the caller names held
            jobs.transition(job.id, target, sources=[JobState.HELD])
    assert jobs.transition_many([job.id], JobState.SCHEDULED, sources=[JobState.HELD]) == []
    assert jobs.request_cancel(job.id) == "cancelled"
    assert jobs.get(job.id).state is JobState.CANCELLED
    with pytest.raises(IllegalTransition):
        jobs.transition(job.id, JobState.PENDING)


def test_a_gated_job_released_from_a_hold_is_still_gated(jobs: JobStore) -> None:
    job, _ = jobs.create(JobSpec(argv=["true"]), extra={"gate": "dependencies"})
    jobs.transition(job.id, JobState.HELD)
    jobs.transition(job.id, JobState.PENDING, sources=[JobState.HELD])
    assert job.id in jobs.gated_ids() and job.id not in jobs.pending_ids()
    score = _score(jobs, JobState.PENDING, job.id)
    assert score is not None and score >= GATED_BAND

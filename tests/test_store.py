"""Unit tests of the job store's atomic transitions and indexes (fakeredis)."""

from __future__ import annotations

import fakeredis
import pytest

from simfarm.common.errors import IllegalTransition, JobNotFound, StaleAttempt
from simfarm.common.hfss import HFSSSimulationConfig
from simfarm.common.models import JobSpec
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from simfarm.common.store.rows import JobRow, RenderedRows


@pytest.fixture
def jobs() -> JobStore:
    return JobStore(fakeredis.FakeRedis(), "t:")


def spec(priority: int = 5) -> JobSpec:
    return JobSpec(argv=["true"], priority=priority)


def test_create_is_pending_with_submitted_event(jobs: JobStore) -> None:
    job, created = jobs.create(spec())
    assert created and job.state is JobState.PENDING and job.attempt == 0
    events = jobs.events(job.id)
    assert [(e.type, e.data["to"]) for e in events] == [("state", "pending")]


def test_pending_order_is_priority_then_submit_time(jobs: JobStore) -> None:
    low, _ = jobs.create(spec(1))
    high1, _ = jobs.create(spec(9))
    mid, _ = jobs.create(spec(5))
    high2, _ = jobs.create(spec(9))
    assert jobs.pending_ids() == [high1.id, high2.id, mid.id, low.id]


def test_illegal_transition_raises_and_changes_nothing(jobs: JobStore) -> None:
    job, _ = jobs.create(spec())
    before = jobs.events(job.id)
    with pytest.raises(IllegalTransition) as err:
        jobs.transition(job.id, JobState.COMPLETED)
    assert err.value.current == "pending"
    assert jobs.get(job.id).state is JobState.PENDING
    assert jobs.events(job.id) == before
    assert jobs.pending_ids() == [job.id]


def test_final_states_cannot_be_left(jobs: JobStore) -> None:
    job, _ = jobs.create(spec())
    jobs.request_cancel(job.id)
    for target in (JobState.PENDING, JobState.RUNNING, JobState.COMPLETED):
        with pytest.raises(IllegalTransition):
            jobs.transition(job.id, target)
    with pytest.raises(IllegalTransition):
        jobs.request_cancel(job.id)


def test_stale_attempt_cannot_start_the_job(jobs: JobStore) -> None:
    job, _ = jobs.create(spec())
    jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True, fields={"node": "a"})
    with pytest.raises(StaleAttempt):
        jobs.transition(job.id, JobState.RUNNING, expect_attempt=0, expect_node="a")
    with pytest.raises(StaleAttempt):
        jobs.transition(job.id, JobState.RUNNING, expect_attempt=1, expect_node="b")
    jobs.transition(job.id, JobState.RUNNING, expect_attempt=1, expect_node="a")
    job = jobs.get(job.id)
    assert job.state is JobState.RUNNING and job.node == "a" and job.started_at is not None


def test_state_indexes_follow_transitions(jobs: JobStore) -> None:
    job, _ = jobs.create(spec())
    jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True, fields={"node": "n1"})
    assert jobs.count(JobState.PENDING) == 0 and jobs.count(JobState.SCHEDULED) == 1
    assert jobs.connection.smembers(jobs.keys.node_jobs("n1")) == {job.id.encode()}
    jobs.transition(job.id, JobState.RUNNING)
    jobs.transition(job.id, JobState.COMPLETED, fields={"exit_code": 0})
    assert jobs.counts()["completed"] == 1 and jobs.counts()["running"] == 0
    assert jobs.connection.smembers(jobs.keys.node_jobs("n1")) == set()
    assert jobs.get(job.id).exit_code == 0


def test_cancel_pending_now_running_on_request(jobs: JobStore) -> None:
    pending, _ = jobs.create(spec())
    assert jobs.request_cancel(pending.id) == "cancelled"
    assert jobs.get(pending.id).state is JobState.CANCELLED
    running, _ = jobs.create(spec())
    jobs.transition(running.id, JobState.SCHEDULED, new_attempt=True, fields={"node": "n"})
    jobs.transition(running.id, JobState.RUNNING)
    assert jobs.request_cancel(running.id) == "requested"
    job = jobs.get(running.id)
    assert job.state is JobState.RUNNING and job.cancel_requested


def test_idempotency_key_returns_the_first_job(jobs: JobStore) -> None:
    first, created1 = jobs.create(spec(), idempotency_key="k1")
    again, created2 = jobs.create(spec(9), idempotency_key="k1")
    assert created1 and not created2 and again.id == first.id
    assert jobs.count(JobState.PENDING) == 1


def test_missing_job(jobs: JobStore) -> None:
    with pytest.raises(JobNotFound):
        jobs.get("nope")
    with pytest.raises(JobNotFound):
        jobs.transition("nope", JobState.SCHEDULED)
    with pytest.raises(JobNotFound):
        jobs.request_cancel("nope")


def test_list_pages_with_cursor(jobs: JobStore) -> None:
    ids = [jobs.create(spec())[0].id for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = jobs.list_jobs(limit=3, cursor=cursor)
        seen.extend(j.id for j in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    by_state = jobs.list_jobs(state=JobState.PENDING, limit=5)
    assert [j.id for j in by_state.jobs] == ids[:5] and by_state.next_cursor is not None


def test_set_priority_reorders_pending(jobs: JobStore) -> None:
    a, _ = jobs.create(spec(5))
    b, _ = jobs.create(spec(5))
    jobs.set_priority(b.id, 8)
    assert jobs.pending_ids() == [b.id, a.id]
    assert jobs.get(b.id).priority == 8


def test_events_since_cursor_and_logs_share_ids(jobs: JobStore) -> None:
    job, _ = jobs.create(spec())
    first = jobs.events(job.id)[0].id
    ids = jobs.append_events(job.id, [("log", {"line": "a"}), ("log", {"line": "b"})])
    later = jobs.events(job.id, since=first)
    assert [e.data["line"] for e in later] == ["a", "b"]
    assert [e.id for e in later] == ids
    assert [e.id for e in jobs.global_events(since="0-0")][-2:] == ids


def test_a_jobs_lease_is_read_with_it_and_alone(jobs: JobStore) -> None:
    job, _ = jobs.create(spec(), owner="ann")
    assert jobs.get(job.id).lease is None and jobs.attempt(job.id).lease.until is None
    jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True,
                    fields={"node": "n1", "lease_until": "1000.5", "boot": "b1"})
    jobs.transition(job.id, JobState.RUNNING, fields={"lease_until": "2000.25"})
    jobs.update_fields(job.id, {"pid": 4242})
    attempt = jobs.attempt(job.id)
    assert (attempt.state, attempt.number, attempt.node) == (JobState.RUNNING, 1, "n1")
    assert attempt.lease.until is not None and attempt.lease.until.timestamp() == 2000.25
    assert (attempt.lease.boot, attempt.lease.pid, attempt.lease.claimed) == ("b1", 4242, False)
    assert jobs.get(job.id).lease == attempt.lease
    other, _ = jobs.create(spec())
    assert [a.job_id for a in jobs.attempts([job.id, "gone", other.id])] == [job.id, other.id]
    jobs.transition(job.id, JobState.COMPLETED,
                    fields={"lease_until": None, "boot": None, "pid": None})
    assert jobs.get(job.id).lease is None
    with pytest.raises(JobNotFound):
        jobs.attempt("gone")


def test_owner_cancel_request_and_times_are_typed_reads(jobs: JobStore) -> None:
    mine, _ = jobs.create(spec(), owner="ann")
    nobodys, _ = jobs.create(spec())
    assert jobs.owner_of(mine.id) == "ann" and jobs.owner_of(nobodys.id) is None
    with pytest.raises(JobNotFound):
        jobs.owner_of("gone")
    jobs.transition(mine.id, JobState.SCHEDULED, new_attempt=True, fields={"node": "n"})
    jobs.transition(mine.id, JobState.RUNNING)
    assert not jobs.cancel_requested(mine.id) and jobs.state_of(mine.id) is JobState.RUNNING
    jobs.request_cancel(mine.id)
    jobs.request_cancel(nobodys.id)  # pending: cancelled at once
    assert jobs.cancel_requested(mine.id) and jobs.cancel_requested(nobodys.id)
    assert not jobs.cancel_requested("gone") and jobs.state_of("gone") is None
    times = jobs.times(mine.id)
    assert times.created_at == pytest.approx(mine.created_at.timestamp(), abs=1e-5)
    assert times.started_at is not None and times.finished_at is None


def test_sources_only_narrow_the_state_machine(jobs: JobStore) -> None:
    job, _ = jobs.create(spec())
    before = jobs.events(job.id)
    # pending -> completed is not in TRANSITIONS: naming pending as a source changes nothing
    with pytest.raises(IllegalTransition):
        jobs.transition(job.id, JobState.COMPLETED, sources=[JobState.PENDING])
    with pytest.raises(IllegalTransition):
        jobs.transition(job.id, JobState.RUNNING, sources=[JobState.PENDING, JobState.SCHEDULED])
    assert jobs.get(job.id).state is JobState.PENDING and jobs.events(job.id) == before
    jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True, fields={"node": "n"})
    # allowed from scheduled, but narrowed to pending by the caller
    with pytest.raises(IllegalTransition):
        jobs.transition(job.id, JobState.CANCELLED, sources=[JobState.PENDING])
    assert jobs.get(job.id).state is JobState.SCHEDULED


def test_a_cluster_job_seen_only_once_over_completes_from_scheduled(jobs: JobStore) -> None:
    job, _ = jobs.create(spec())
    jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True, fields={"node": "login"})
    jobs.transition(job.id, JobState.COMPLETED, expect_attempt=1,
                    sources=[JobState.SCHEDULED, JobState.RUNNING], fields={"exit_code": 0})
    done = jobs.get(job.id)
    assert done.state is JobState.COMPLETED and done.finished_at is not None
    assert [e.data["to"] for e in jobs.events(job.id)] == ["pending", "scheduled", "completed"]


def test_newest_rows_of_one_kind_and_owner_page_past_other_kinds(jobs: JobStore) -> None:
    def hfss(jobid: str) -> JobSpec:
        config = HFSSSimulationConfig.from_dict({"project_path": "/p/b.aedt", "jobid": jobid})
        return JobSpec(name=jobid, kind="hfss", hfss=config)

    made = []
    for n in range(3):
        made.append(jobs.create(hfss(f"h{n}"), owner="ann")[0].id)
        for _ in range(3):
            jobs.create(spec(), owner="ann")  # other kinds in between fill whole pages
    jobs.create(hfss("bobs"), owner="bob")
    rows = jobs.newest_rows(owner="ann", kind="hfss", limit=2)
    assert [r.id for r in rows] == made[::-1][:2]
    assert rows[0].spec["hfss"]["jobid"] == "h2" and rows[0].owner == "ann"
    assert rows[0].state is JobState.PENDING and rows[0].exit_code is None
    assert [r.id for r in jobs.newest_rows(owner="ann", kind="hfss")] == made[::-1]
    assert len(jobs.newest_rows(kind="hfss")) == 4
    assert len(jobs.newest_rows(owner="ann")) == 12


def test_a_listing_renders_again_only_the_jobs_that_changed(jobs: JobStore) -> None:
    rendered: list[str] = []

    def render(row: JobRow) -> tuple[str, str, int]:
        rendered.append(row.id)
        return row.id, row.state.value, row.priority

    rows = RenderedRows(render)
    made = [jobs.create(spec())[0].id for _ in range(3)]
    assert jobs.newest_rendered(rows) == [(i, "pending", 5) for i in made[::-1]]
    assert jobs.newest_rendered(rows) == [(i, "pending", 5) for i in made[::-1]]
    assert sorted(rendered) == sorted(made)  # the second listing rendered nothing
    jobs.set_priority(made[0], 9)
    jobs.transition(made[1], JobState.CANCELLED)
    assert jobs.newest_rendered(rows) == [
        (made[2], "pending", 5), (made[1], "cancelled", 5), (made[0], "pending", 9)]
    assert sorted(rendered[3:]) == sorted(made[:2])


def test_the_listing_version_moves_with_every_change_a_listing_shows(jobs: JobStore) -> None:
    """A cached listing is served while the version stays: every write of a listed
    field, a new job and an expired one move it; a write no listing shows does not."""
    from simfarm.common.store.history import HistoryStore

    seen = [jobs.listing_version()]

    def moved() -> bool:
        seen.append(jobs.listing_version())
        return seen[-1] != seen[-2]

    job, _ = jobs.create(spec())
    assert moved()
    jobs.set_pid(job.id, 4242)  # not listed, and no event
    assert not moved()
    jobs.update_fields(job.id, {"error": "disk full"})  # listed, and no event
    assert moved()
    jobs.set_priority(job.id, 8)
    assert moved()
    jobs.transition(job.id, JobState.CANCELLED)
    assert moved()
    assert not moved()  # nothing happened
    assert HistoryStore(jobs).expire(job.id)[0] == "expired"
    assert moved()


def test_placing_names_the_attempt_it_expects_even_for_a_job_stored_without_one(
    jobs: JobStore,
) -> None:
    # the dispatcher's message names attempt + 1 of the attempt it read: a job that moved
    # on since is not scheduled under a wrong number
    job, _ = jobs.create(JobSpec(argv=["true"]))
    with pytest.raises(StaleAttempt):
        jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True, expect_attempt=1,
                        fields={"node": "a"})
    # a job stored before the attempt field existed has made no attempt yet
    jobs.connection.hdel(jobs.keys.job(job.id), "attempt")
    jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True, expect_attempt=0,
                    fields={"node": "a"})
    assert (jobs.get(job.id).state, jobs.get(job.id).attempt) == (JobState.SCHEDULED, 1)

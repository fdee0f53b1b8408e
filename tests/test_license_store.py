"""The licence pools in the store (fakeredis): drawn atomically with the transition that
places a job, all or nothing, and given back on every end of its attempt; the
reconciler recounts the pools from the jobs that hold them and repairs drift."""

from __future__ import annotations

import fakeredis
import pytest

from simfarm.common.errors import LicensesUnavailable
from simfarm.common.license_pools import LicenseStatus
from simfarm.common.models import JobSpec
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from simfarm.common.store.licenses import LicenseStore

NEED = {"anshpc": 8, "electronics_desktop": 1}


@pytest.fixture
def stores() -> tuple[JobStore, LicenseStore]:
    connection = fakeredis.FakeRedis()
    licences = LicenseStore(connection, "t:")
    licences.publish([LicenseStatus(name="anshpc", count=16, feature="anshpc", limit=16),
                      LicenseStatus(name="electronics_desktop", count=4,
                                    feature="electronics_desktop", limit=4)])
    return JobStore(connection, "t:"), licences


def place(jobs: JobStore, job_id: str, draw: dict[str, int] = NEED) -> None:
    jobs.transition(job_id, JobState.SCHEDULED, new_attempt=True, fields={"node": "n1"},
                    draw=draw)


def new(jobs: JobStore) -> str:
    return jobs.create(JobSpec(argv=["true"], resources={"licenses": NEED}))[0].id


def test_a_draw_is_all_or_nothing_with_the_placing_transition(
        stores: tuple[JobStore, LicenseStore]) -> None:
    jobs, licences = stores
    first, second, third = new(jobs), new(jobs), new(jobs)
    place(jobs, first)
    place(jobs, second)
    assert licences.held() == {"anshpc": 16, "electronics_desktop": 2}
    assert jobs.get(first).licenses_held == NEED
    with pytest.raises(LicensesUnavailable) as refused:
        place(jobs, third)
    assert (refused.value.feature, refused.value.free) == ("anshpc", 0)
    job = jobs.get(third)
    assert (job.state, job.attempt, job.licenses_held) == (JobState.PENDING, 0, None)
    assert licences.held() == {"anshpc": 16, "electronics_desktop": 2}  # nothing taken


@pytest.mark.parametrize("end", ["completed", "failed", "timeout", "lost", "requeued",
                                 "cancelled-running", "cancelled-scheduled"])
def test_licences_return_on_every_end_of_an_attempt(
        stores: tuple[JobStore, LicenseStore], end: str) -> None:
    jobs, licences = stores
    job_id = new(jobs)
    place(jobs, job_id)
    if end != "cancelled-scheduled":
        jobs.transition(job_id, JobState.RUNNING, expect_attempt=1)
    if end == "completed":
        jobs.transition(job_id, JobState.COMPLETED, fields={"exit_code": 0})
    elif end in ("failed", "timeout"):
        jobs.transition(job_id, JobState.FAILED, fields={"error": end})
    elif end in ("lost", "requeued"):  # the reaper, or a worker handing it back
        jobs.transition(job_id, JobState.PENDING, fields={"node": None, "reason": end})
    elif end == "cancelled-running":
        jobs.request_cancel(job_id)
        jobs.transition(job_id, JobState.CANCELLED)
    else:
        assert jobs.request_cancel(job_id) == "cancelled"  # lua/cancel.lua
    assert licences.held() == {"anshpc": 0, "electronics_desktop": 0}
    assert jobs.get(job_id).licenses_held is None
    if end in ("lost", "requeued"):  # placed again later: draws again
        place(jobs, job_id)
        assert licences.held() == {"anshpc": 8, "electronics_desktop": 1}


def test_the_reconciler_recounts_from_the_holders_and_repairs_drift(
        stores: tuple[JobStore, LicenseStore]) -> None:
    jobs, licences = stores
    running, scheduled = new(jobs), new(jobs)
    place(jobs, running)
    jobs.transition(running, JobState.RUNNING, expect_attempt=1)
    place(jobs, scheduled, {"anshpc": 4})
    assert licences.reconcile() == ({"anshpc": 12, "electronics_desktop": 1},
                                    {"anshpc": 8, "electronics_desktop": 1}, [])
    # drift: a count lost (a crash between writes elsewhere, an edit by hand)
    licences.connection.hset(licences.keys.licenses_held, mapping={"anshpc": 3, "ghost": 2})
    counted = licences.reconcile(repair=False)
    assert sorted(counted.drift) == [("anshpc", 12, 3), ("ghost", 0, 2)]
    assert licences.held()["anshpc"] == 3  # only looked
    assert sorted(licences.reconcile().drift) == [("anshpc", 12, 3), ("ghost", 0, 2)]
    assert licences.held() == {"anshpc": 12, "electronics_desktop": 1}
    assert licences.reconcile().drift == []
    assert licences.holdings([running, scheduled, "nobody"]) == {
        running: NEED, scheduled: {"anshpc": 4}}


def test_the_limit_is_what_the_leader_published(stores: tuple[JobStore, LicenseStore]) -> None:
    jobs, licences = stores
    licences.publish([LicenseStatus(name="anshpc", count=16, feature="anshpc", limit=5,
                                    outside=11, source="server")])
    assert licences.limits() == {"anshpc": 5}  # electronics_desktop is no pool any more
    with pytest.raises(LicensesUnavailable):
        place(jobs, new(jobs), {"anshpc": 8})
    place(jobs, new(jobs), {"anshpc": 5})
    [status] = licences.statuses().values()
    assert (status.limit, status.held, status.free, status.outside) == (5, 5, 0, 11)

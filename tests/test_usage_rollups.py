"""Usage accounting, unit level (fakeredis runs the store's real Lua): the record of an
ended attempt, the per-day roll-ups it feeds (a run across midnight is split between
the two days), how attempts end, a leader failover (only the leader holding the lock
may end an attempt, once), reports combining days into buckets, ownership of rows, the
retention trim, and the parsing of a report's range."""

from __future__ import annotations

import time
from unittest import mock

import fakeredis
import pytest

from simfarm.common.errors import IllegalTransition, StaleAttempt
from simfarm.common.models import JobSpec
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from simfarm.common.store.jobs import Move
from simfarm.common.store.leader import LeaderLock
from simfarm.common.store.leases import LeaseEnd, LeaseGrant
from simfarm.common.store.usage import UsageStore
from simfarm.common.usage import DAY_S, combine, day_date, day_of, parse_when
from tests.helpers import wait_for

MIDNIGHT = 20_000 * DAY_S  # 2024-10-04 00:00 UTC


@pytest.fixture
def stores() -> tuple[JobStore, UsageStore]:
    connection = fakeredis.FakeRedis()
    return JobStore(connection), UsageStore(connection)


def _run(jobs: JobStore, *, owner: str, account: str, node: str, cores: int,
         start: float, end: float, target: JobState = JobState.COMPLETED,
         licenses: dict[str, int] | None = None, lease: LeaseEnd | None = None,
         job_id: str | None = None) -> str:
    """One attempt of a job placed at ``start - 1``, running from ``start`` to ``end``
    (each transition at the time given, as the Lua is told ``now``)."""
    clock = mock.patch("simfarm.common.store.jobs.time.time")
    with clock as now:
        if job_id is None:
            now.return_value = start - 5
            spec = JobSpec(argv=["true"], resources={"cores": cores,
                                                     "licenses": licenses or {}})
            job_id = jobs.create(spec, owner=owner, extra={"account": account})[0].id
        attempt = jobs.attempt(job_id).number + 1
        now.return_value = start - 1
        jobs.transition(job_id, JobState.SCHEDULED, new_attempt=True,
                        lease=LeaseGrant(node, start + 60), sources=[JobState.PENDING])
        now.return_value = start
        jobs.start_attempt(job_id, attempt, LeaseGrant(node, start + 60))
        now.return_value = end
        jobs.transition(job_id, target, expect_attempt=attempt,
                        lease=lease or LeaseEnd(requeued=target is JobState.PENDING))
    return job_id


def test_an_attempt_is_recorded_with_the_job_and_in_each_roll_up(
        stores: tuple[JobStore, UsageStore]) -> None:
    jobs, usage = stores
    job_id = _run(jobs, owner="alice", account="cfd", node="n1", cores=4,
                  start=MIDNIGHT + 100, end=MIDNIGHT + 400, licenses={"tok": 2})
    [record] = jobs.get(job_id).usage
    assert (record.user, record.account, record.node, record.cores) == ("alice", "cfd", "n1", 4)
    assert record.wall_s == pytest.approx(300) and record.core_s == pytest.approx(1200)
    assert record.wait_s == pytest.approx(5)  # submitted at start - 5
    assert record.licenses == {"tok": 2} and record.ended == "completed"
    day = day_of(MIDNIGHT)
    for by, name in (("user", "alice"), ("account", "cfd"), ("node", "n1")):
        [row] = usage.rows(by, day, day)
        assert row.name == name
        assert row.metrics["core_s"] == pytest.approx(1200)
        assert row.metrics["lic/tok"] == pytest.approx(600)
        assert row.metrics["attempts"] == 1 and row.metrics["end/completed"] == 1


def test_a_run_across_midnight_is_split_between_the_days(
        stores: tuple[JobStore, UsageStore]) -> None:
    jobs, usage = stores
    _run(jobs, owner="bob", account="em", node="n2", cores=2,
         start=MIDNIGHT - 600, end=MIDNIGHT + 1800)
    before, after = usage.rows("account", day_of(MIDNIGHT) - 1, day_of(MIDNIGHT))
    assert before.metrics["core_s"] == pytest.approx(2 * 600)
    assert after.metrics["core_s"] == pytest.approx(2 * 1800)
    assert "attempts" not in before.metrics and after.metrics["attempts"] == 1
    rows, total = combine([before, after], "day")
    assert [r.day for r in rows] == [day_date(before.day).isoformat(),
                                    day_date(after.day).isoformat()]
    assert total.core_seconds == pytest.approx(4800)
    assert total.core_hours == pytest.approx(4800 / 3600)
    [month] = combine([before, after], "month")[0]
    assert month.day == "2024-10-01" and month.core_seconds == pytest.approx(4800)


def test_each_ending_is_counted_once(stores: tuple[JobStore, UsageStore]) -> None:
    jobs, usage = stores
    t = MIDNIGHT + 1000
    _run(jobs, owner="a", account="x", node="n1", cores=1, start=t, end=t + 10,
         target=JobState.FAILED, lease=LeaseEnd(timed_out=True))
    _run(jobs, owner="a", account="x", node="n1", cores=1, start=t, end=t + 10,
         target=JobState.FAILED)
    lost = _run(jobs, owner="a", account="x", node="n1", cores=1, start=t, end=t + 10,
                target=JobState.PENDING, lease=LeaseEnd(requeued=True, losses=1))
    # the requeued job runs again: its second attempt is a record of its own
    _run(jobs, owner="a", account="x", node="n2", cores=1, start=t + 20, end=t + 50,
         job_id=lost)
    requeued = _run(jobs, owner="a", account="x", node="n1", cores=1, start=t, end=t + 10,
                    target=JobState.PENDING)
    # a scheduled attempt cancelled before it started: counted, with no run time
    with mock.patch("simfarm.common.store.jobs.time.time", return_value=t + 60):
        jobs.transition(requeued, JobState.SCHEDULED, new_attempt=True,
                        lease=LeaseGrant("n1", t + 120), sources=[JobState.PENDING])
    assert jobs.request_cancel(requeued) == "cancelled"
    # the outcome sent again after a lost reply is refused and counts nothing
    with pytest.raises(IllegalTransition):
        jobs.transition(lost, JobState.COMPLETED, expect_attempt=2, lease=LeaseEnd())
    assert [u.ended for u in jobs.get(lost).usage] == ["lost", "completed"]
    assert jobs.get(lost).usage[1].wait_s == pytest.approx(10)  # requeued at t + 10
    day = day_of(t)
    # (the cancel happened now, on another day: the report covers both)
    rows, total = combine(usage.rows("user", day, day_of(time.time())), "total")
    assert [r.name for r in rows] == ["a"] and total.attempts == 6
    assert total.ended == {"cancelled": 1, "completed": 1, "failed": 1, "lost": 1,
                           "requeued": 1, "timeout": 1}
    assert total.core_seconds == pytest.approx(4 * 10 + 30)


def test_after_a_leader_failover_only_the_new_leaders_verdict_counts(
        stores: tuple[JobStore, UsageStore]) -> None:
    jobs, usage = stores
    old = LeaderLock(jobs.connection, ttl_s=0.05)
    assert old.acquire_or_renew()
    job_id = jobs.create(JobSpec(argv=["true"], resources={"cores": 2}), owner="a",
                         extra={"account": "x"})[0].id
    grant = LeaseGrant("n1", time.time() + 60)
    jobs.transition(job_id, JobState.SCHEDULED, new_attempt=True, fence=old.fence,
                    lease=grant, sources=[JobState.PENDING])
    jobs.start_attempt(job_id, 1, grant)
    new = LeaderLock(jobs.connection, ttl_s=60)  # takes over once the old lock ran out
    wait_for(new.acquire_or_renew, bool, 5, "the new leader")
    verdict: Move = {"expect_attempt": 1, "sources": [JobState.RUNNING],
                     "lease": LeaseEnd(requeued=True, losses=1)}
    with pytest.raises(StaleAttempt):  # the paused former leader's reaper
        jobs.transition(job_id, JobState.PENDING, fence=old.fence, **verdict)
    assert jobs.get(job_id).usage == []
    jobs.transition(job_id, JobState.PENDING, fence=new.fence, **verdict)
    with pytest.raises(IllegalTransition):  # the same verdict again (a retried reply)
        jobs.transition(job_id, JobState.PENDING, fence=new.fence, **verdict)
    assert [u.ended for u in jobs.get(job_id).usage] == ["lost"]
    _, total = combine(usage.rows("node", 0, day_of(time.time())), "total")
    assert total.attempts == 1 and total.ended == {"lost": 1}


def test_users_see_their_own_rows_only(stores: tuple[JobStore, UsageStore]) -> None:
    jobs, usage = stores
    t = MIDNIGHT + 5000
    _run(jobs, owner="alice", account="cfd", node="n1", cores=1, start=t, end=t + 100)
    _run(jobs, owner="alice", account="em", node="n2", cores=2, start=t, end=t + 100)
    _run(jobs, owner="bob", account="cfd", node="n1", cores=4, start=t, end=t + 100)
    day = day_of(t)
    everyone = {r.name: r.metrics["core_s"] for r in usage.rows("account", day, day)}
    assert everyone == pytest.approx({"cfd": 500, "em": 200})
    mine = {r.name: r.metrics["core_s"] for r in usage.rows("account", day, day, "alice")}
    assert mine == pytest.approx({"cfd": 100, "em": 200})
    nodes = {r.name: r.metrics["core_s"] for r in usage.rows("node", day, day, "bob")}
    assert nodes == pytest.approx({"n1": 400})
    assert [r.name for r in usage.rows("user", day, day, "bob")] == ["bob"]


def test_retention_forgets_old_days_only(stores: tuple[JobStore, UsageStore]) -> None:
    jobs, usage = stores
    for days_ago in (3, 2, 1):
        t = MIDNIGHT - days_ago * DAY_S + 100
        _run(jobs, owner="a", account="x", node="n1", cores=1, start=t, end=t + 10)
    first = day_of(MIDNIGHT) - 3
    assert usage.days(first, first + 2) == [first, first + 1, first + 2]
    assert usage.forget_before(first + 2) == 2
    assert usage.days(first, first + 2) == [first + 2]
    assert [r.day for r in usage.rows("node", first, first + 2)] == [first + 2]


def test_a_day_recorded_in_the_former_layout_still_counts(
        stores: tuple[JobStore, UsageStore]) -> None:
    """Roll-ups written before 2026-12 (one hash per dimension, one field per number)
    are still read beside the current ones, and forgotten with them."""
    jobs, usage = stores
    t = MIDNIGHT + 7000
    _run(jobs, owner="alice", account="cfd", node="n1", cores=2, start=t, end=t + 100)
    day = day_of(t)
    former = usage.keys.usage_day(day, "account.user")
    jobs.connection.hset(former, mapping={"cfd|alice|core_s": 50, "cfd|alice|attempts": 1,
                                          "em|bob|core_s": 30})
    by_account = {r.name: r.metrics for r in usage.rows("account", day, day)}
    assert by_account["cfd"]["core_s"] == pytest.approx(250)
    assert by_account["cfd"]["attempts"] == 2 and by_account["em"]["core_s"] == 30
    [bob] = usage.rows("user", day, day, "bob")
    assert bob.metrics == {"core_s": 30}
    usage.forget_before(day + 1)
    assert usage.rows("account", day, day) == [] and not jobs.connection.exists(former)


def test_report_ranges_parse_as_documented() -> None:
    now = 1_000_000.0
    assert parse_when("30d", now) == now - 30 * DAY_S
    assert parse_when("12h", now) == now - 12 * 3600
    assert parse_when("-60", now) == now - 60
    assert parse_when("1700000000", now) == 1_700_000_000
    assert parse_when("2026-11-01", now) == 1_793_491_200
    for bad in ("yesterday", "nan", "30x", ""):
        with pytest.raises(ValueError):
            parse_when(bad, now)

"""Fair share and running limits in the placement policy (pure, no Redis): what users of a
shared farm see."""

from __future__ import annotations

import math

import pytest

from simfarm.common.accounts import Account
from simfarm.common.capacity import Capacity, Demand
from simfarm.common.fairshare import accrued, factor, standings
from simfarm.common.user_limits import Limits, LimitSet
from simfarm.common.waiting import explain
from simfarm.workers.dispatch import NodeView, PendingJob, PolicyConfig, Scheduler
from simfarm.workers.dispatch.pools import PoolView
from simfarm.workers.dispatch.reasons import shape_wait

DAY = 86400.0


def farm(cores: int = 4, nodes: int = 1, **config: object) -> Scheduler:
    sched = Scheduler(PolicyConfig(**config))  # type: ignore[arg-type]
    for i in range(nodes):
        sched.upsert_node(NodeView(Capacity(f"n{i}", cores, 64_000, 100_000, {}, {}, cores)))
    return sched


def job(job_id: str, user: str, account: str = "default", seq: int = 0, cores: int = 1,
        prio: int = 5, at: float = 0.0) -> PendingJob:
    return PendingJob(job_id, prio, seq, Demand(cores, 0, 0, {}, {}), 600.0, at, account, user)


def run_round(sched: Scheduler, now: float) -> list[str]:
    return [p.job_id for p in sched.schedule(now)]


def test_the_second_user_goes_first_once_the_first_has_used_the_farm() -> None:
    sched = farm()
    for i in range(100):  # ann floods the farm
        sched.submit(job(f"a{i}", "ann", seq=i))
    assert run_round(sched, 0.0) == ["a0", "a1", "a2", "a3"]
    for i in range(5):  # bob comes later, same priority
        sched.submit(job(f"b{i}", "bob", seq=100 + i, at=60.0))
    running = ["a0", "a1", "a2", "a3"]
    started: list[str] = []
    for t in range(1, 9):  # one job ends each minute
        sched.finish(running.pop(0), at=60.0 * t)
        now = run_round(sched, 60.0 * t)
        running += now
        started += now
        if t == 1:  # ann's waiting jobs say why bob's go first
            reason = sched.why_pending("a4")
            assert reason is not None and (
                "; user ann is over their share: 100 % used vs 50 % share (in account default)"
                in reason.message)
    assert started[:4] == ["b0", "b1", "b2", "b3"]  # the next placements are bob's
    # at t = 300 s both have used 600 core-seconds: equal shares, so submission order
    usage = sched.shares.usage()
    assert usage[("default", "ann")] == pytest.approx(usage[("default", "bob")], rel=0.01)
    assert started[4] == "a4"


def test_a_single_user_keeps_priority_order() -> None:
    sched = farm(cores=1)
    sched.submit(job("low", "ann", seq=1, prio=1))
    sched.submit(job("high", "ann", seq=2, prio=9))
    sched.submit(job("mid", "ann", seq=3, prio=5))
    order = []
    for t in range(3):
        order += run_round(sched, 10.0 * t)
        if order:
            sched.finish(order[-1], at=10.0 * t + 5)
    assert order == ["high", "mid", "low"]


def test_accounts_share_by_their_shares_and_usage_decays() -> None:
    accounts = (Account(name="cfd", shares=1, users=("*",)),
                Account(name="emc", shares=3, users=("*",)))
    usage = {("cfd", "ann"): 50.0, ("emc", "bob"): 50.0}
    by_account, by_user = standings(accounts, usage)
    assert by_account["cfd"].share == pytest.approx(0.25)
    assert by_account["cfd"].used == pytest.approx(0.5)
    assert by_account["cfd"].factor == pytest.approx(2 ** -2)  # twice its share
    assert by_account["emc"].factor == pytest.approx(2 ** (-0.5 / 0.75))
    assert by_account["cfd"].over_text() == "account cfd is over its share: 50 % used vs 25 % share"
    assert by_account["emc"].over_text() is None
    assert by_user[("cfd", "ann")].factor == factor(0.5, 0.25)
    # one core for a day, then one idle day: the integral, then half of it
    one_day = accrued(0.0, 1.0, DAY, DAY)
    assert one_day == pytest.approx(DAY / 2 / math.log(2))
    assert accrued(one_day, 0.0, DAY, DAY) == pytest.approx(one_day / 2)


def test_usage_is_core_seconds_accrued_exactly_from_what_runs() -> None:
    sched = farm(cores=8, half_life_s=1e12)  # no decay to speak of
    sched.submit(job("four", "ann", cores=4))
    sched.submit(job("two", "bob", cores=2, seq=1))
    assert sorted(run_round(sched, 100.0)) == ["four", "two"]
    run_round(sched, 130.0)
    sched.finish("two", at=150.0)  # ended between rounds: counted to its end
    run_round(sched, 200.0)
    usage = sched.shares.usage()
    assert usage[("default", "ann")] == pytest.approx(4 * 100.0, rel=1e-6)
    assert usage[("default", "bob")] == pytest.approx(2 * 50.0, rel=1e-6)


def test_a_user_at_a_running_limit_waits_with_a_reason_and_others_go_past() -> None:
    limits = Limits(users={"ann": LimitSet(max_running_jobs=2)},
                    accounts={"cfd": LimitSet(max_cores=3)})
    sched = farm(cores=8, limits=limits)
    for i in range(4):
        sched.submit(job(f"a{i}", "ann", seq=i, prio=9))
    sched.submit(job("big", "cat", account="cfd", cores=4, seq=10))
    sched.submit(job("b0", "bob", seq=20, prio=1))
    assert run_round(sched, 0.0) == ["a0", "a1", "b0"]  # bob's low priority job is not held up
    reason = sched.why_pending("a2")
    assert reason is not None and reason.code == "limit"
    assert reason.message == ("user ann is at their limit of 2 running jobs (max_running_jobs); "
                              "it starts when one of those jobs ends")
    big = sched.why_pending("big")
    assert big is not None and big.code == "limit" and "account cfd" in big.message
    assert not sched.reservations()  # jobs over a limit hold no reservation
    sched.finish("a0", at=5.0)
    assert run_round(sched, 5.0) == ["a2"]
    assert explain(shape_wait(sched._class_of["a3"], None), "a3", 5.0).code == "limit"


def test_limits_on_licences_of_the_farms_pools() -> None:
    limits = Limits(default=LimitSet(max_licenses={"anshpc": 8}))
    sched = farm(cores=32, limits=limits)
    sched.set_pools([PoolView("anshpc", 100)])
    for i in range(3):
        sched.submit(PendingJob(f"h{i}", 5, i, Demand(4, 0, 0, {}, {}, {"anshpc": 4}), 600.0,
                                0.0, "default", "ann"))
    sched.submit(PendingJob("plain", 5, 9, Demand(4, 0, 0, {}, {}), 600.0, 0.0, "default", "ann"))
    assert run_round(sched, 0.0) == ["h0", "h1", "plain"]  # the default applies to ann
    reason = sched.why_pending("h2")
    assert reason is not None and "8 anshpc licences in use (max_licenses" in reason.message

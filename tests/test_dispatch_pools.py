"""The placement policy with the farm's floating licence pools (pure, no Redis): counted
once for the whole farm, reserved like cores, never a reason to hold cores early."""

from __future__ import annotations

from simfarm.common.capacity import Capacity, Demand
from simfarm.workers.dispatch import NodeView, PendingJob, PolicyConfig, RunningJob, Scheduler
from simfarm.workers.dispatch.pools import PoolView

STRICT = PolicyConfig(aging_s_per_priority=None)
HOUR = 3600.0


def farm(*nodes: tuple[str, int], pools: dict[str, int], config: PolicyConfig = STRICT,
         outside: int = 0) -> Scheduler:
    sched = Scheduler(config)
    for name, cores in nodes:
        sched.upsert_node(NodeView(Capacity(name, cores, 64_000, 100_000, {}, {}, 16)))
    sched.set_pools(PoolView(n, c, outside, "1055@lic01") for n, c in pools.items())
    return sched


def job(job_id: str, seq: int, cores: int = 1, lic: int = 0, limit: float | None = HOUR,
        prio: int = 5, name: str = "anshpc") -> PendingJob:
    pool = {name: lic} if lic else {}
    return PendingJob(job_id, prio, seq, Demand(cores, 0, 0, {}, {}, pool), limit, 0.0)


def placed(sched: Scheduler, now: float = 0.0) -> list[str]:
    return [p.job_id for p in sched.schedule(now)]


def test_a_pool_of_two_runs_two_jobs_across_the_whole_farm() -> None:
    sched = farm(("n1", 8), ("n2", 8), ("n3", 8), pools={"anshpc": 2})
    for i in range(4):
        sched.submit(job(f"j{i}", i, lic=1))
    assert placed(sched) == ["j0", "j1"]  # nodes have room for all four: licences do not
    why = sched.why_pending("j2")
    assert why is not None and why.code == "licenses"
    assert why.message.startswith("waiting for 1 anshpc (0 free of 2 on 1055@lic01); "
                                  "reserved on n1, starting by")
    assert placed(sched, 1.0) == []
    sched.finish("j0")
    assert placed(sched, 2.0) == ["j2"]
    assert sched.pool_held() == {"anshpc": 2} and sched.pool_waiting() == {"anshpc": 1}


def test_licences_in_use_outside_the_farm_shrink_what_it_starts() -> None:
    sched = farm(("n1", 16), pools={"anshpc": 16})
    for i in range(4):
        sched.submit(job(f"j{i}", i, lic=4))
    sched.set_pools([PoolView("anshpc", 11, 5, "1055@lic01")])  # 5 checked out by people
    assert placed(sched) == ["j0", "j1"]
    why = sched.why_pending("j2")
    assert why is not None
    assert why.message.startswith(
        "waiting for 4 anshpc (3 free; 5 in use outside the farm on 1055@lic01)")
    sched.set_pools([PoolView("anshpc", 16, 0, "1055@lic01")])  # they were given back
    assert placed(sched, 1.0) == ["j2", "j3"]


def test_a_job_waiting_for_licences_holds_no_cores_before_they_are_due() -> None:
    sched = farm(("n1", 8), pools={"anshpc": 2})
    sched.add_running(RunningJob("a", "n1", Demand(1, pool={"anshpc": 2}), 0.0, HOUR))
    sched.submit(job("b", 1, cores=4, lic=2, limit=HOUR))  # waits for a's licences
    assert placed(sched) == []
    [hold] = sched.reservations()
    assert (hold.job_id, hold.start) == ("b", HOUR)  # cores from when the licences are due
    # a 7-core job that ends before then runs now on the cores b does not need yet
    sched.submit(job("c", 2, cores=7, limit=HOUR / 2))
    assert placed(sched, 1.0) == ["c"]


def test_small_jobs_cannot_starve_a_job_that_waits_for_many_licences() -> None:
    sched = farm(("n1", 16), ("n2", 16), pools={"anshpc": 4})
    sched.add_running(RunningJob("a", "n1", Demand(1, pool={"anshpc": 1}), 0.0, HOUR))
    sched.submit(job("big", 1, lic=4, limit=HOUR))
    assert placed(sched) == []
    [hold] = sched.reservations()
    assert hold.start == HOUR
    # three free licences, but taking one for 2 h would delay big: the small job waits
    sched.submit(job("long", 2, lic=1, limit=2 * HOUR))
    assert placed(sched, 1.0) == []
    why = sched.why_pending("long")
    assert why is not None and why.code == "licenses-reserved"
    assert "reserved for job big" in why.message
    # one that gives it back before big's turn may use it (backfill)
    sched.submit(job("short", 3, lic=3, limit=HOUR / 2))
    assert placed(sched, 2.0) == ["short"]
    sched.finish("a")
    sched.finish("short")
    assert placed(sched, 3.0) == ["big"]


def test_a_pool_reservation_moves_earlier_when_licences_come_back_early() -> None:
    sched = farm(("n1", 8), pools={"anshpc": 2})
    sched.add_running(RunningJob("a", "n1", Demand(1, pool={"anshpc": 2}), 0.0, 4 * HOUR))
    sched.submit(job("b", 1, lic=2))
    assert placed(sched) == []
    assert sched.reservations()[0].start == 4 * HOUR
    sched.finish("a")  # ended after a minute, not four hours
    assert placed(sched, 60.0) == ["b"]


def test_node_tokens_and_pool_licences_of_one_name_never_mix() -> None:
    sched = Scheduler(STRICT)
    sched.upsert_node(NodeView(Capacity("w1", 8, 64_000, 100_000, {}, {"hfss": 1}, 8)))
    sched.set_pools([PoolView("anshpc", 1)])
    sched.submit(PendingJob("x", 5, 1, Demand(1, 0, 0, {}, {"hfss": 1}, {"anshpc": 1}),
                            HOUR, 0.0))
    sched.submit(PendingJob("y", 5, 2, Demand(1, 0, 0, {}, {}, {"anshpc": 1}), HOUR, 0.0))
    assert placed(sched) == ["x"]
    assert sched.why_pending("y") is not None

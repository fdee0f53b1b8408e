"""Unit tests of the placement policy (pure, no Redis): what a user of the farm would see."""

from __future__ import annotations

import pytest

from simfarm.common.capacity import Capacity, Demand, never_fits_reason
from simfarm.common.waiting import ShapeWait, explain, shape_key
from simfarm.workers.dispatch import (
    BackfillMode,
    NodeView,
    PendingJob,
    PolicyConfig,
    RunningJob,
    Scheduler,
)
from simfarm.workers.dispatch.pools import PoolView

STRICT = PolicyConfig(aging_s_per_priority=None)


def node(name: str, cores: int = 8, mem: int = 32_000, disk: int = 100_000,
         labels: dict[str, str] | None = None, lic: dict[str, int] | None = None,
         max_jobs: int = 8, held: str | None = None) -> NodeView:
    return NodeView(Capacity(name, cores, mem, disk, labels or {}, lic or {}, max_jobs), held)


def job(job_id: str, cores: int = 1, prio: int = 5, seq: int = 0, mem: int = 0,
        limit: float | None = 600.0, labels: dict[str, str] | None = None,
        lic: dict[str, int] | None = None, at: float = 0.0) -> PendingJob:
    return PendingJob(job_id, prio, seq, Demand(cores, mem, 0, labels or {}, lic or {}),
                      limit, at)


def farm(*views: NodeView, config: PolicyConfig = STRICT) -> Scheduler:
    sched = Scheduler(config)
    for v in views:
        sched.upsert_node(v)
    return sched


def placed(sched: Scheduler, now: float = 0.0) -> dict[str, str]:
    return {p.job_id: p.node for p in sched.schedule(now)}


def test_higher_priority_first_then_submission_order() -> None:
    sched = farm(node("a", cores=2, max_jobs=2))
    sched.submit(job("low", prio=1, seq=1))
    sched.submit(job("old", prio=5, seq=2))
    sched.submit(job("new", prio=5, seq=3))
    sched.submit(job("top", prio=9, seq=4))
    assert list(placed(sched)) == ["top", "old"]
    sched.finish("top")
    assert list(placed(sched, 1.0)) == ["new"]
    assert sched.why_pending("low") is not None


def test_routes_by_cores_memory_labels_and_licences() -> None:
    sched = farm(
        node("small", cores=4, mem=8_000),
        node("big", cores=32, mem=256_000),
        node("gpu", cores=8, labels={"gpu": "a100"}),
        node("win", cores=8, labels={"os": "windows"}, lic={"hfss": 1}),
    )
    sched.submit(job("wide", cores=16, seq=1))
    sched.submit(job("fat", cores=1, mem=64_000, seq=2))
    sched.submit(job("cuda", labels={"gpu": "a100"}, seq=3))
    sched.submit(job("hfss", labels={"os": "windows"}, lic={"hfss": 1}, seq=4))
    sched.submit(job("hfss2", labels={"os": "windows"}, lic={"hfss": 1}, seq=5))
    where = placed(sched)
    assert where == {"wide": "big", "fat": "big", "cuda": "gpu", "hfss": "win"}
    assert sched.why_pending("hfss2") is not None


def test_best_fit_keeps_big_nodes_free() -> None:
    sched = farm(node("big", cores=64, max_jobs=64), node("small", cores=4))
    sched.submit(job("tiny", cores=2))
    assert placed(sched) == {"tiny": "small"}


def test_never_fits_is_reported_with_the_closest_miss() -> None:
    sched = farm(node("a", cores=8), node("b", cores=16, labels={"os": "linux"}))
    sched.submit(job("huge", cores=64, seq=1))
    sched.submit(job("mac", labels={"os": "macos"}, seq=2))
    assert placed(sched) == {}
    huge = sched.why_pending("huge")
    assert huge is not None and huge.code == "never-fits"
    assert "64 cores (node has 16)" in huge.message
    mac = sched.why_pending("mac")
    assert mac is not None and "labels os=macos" in mac.message
    assert never_fits_reason(Demand(4), []) == "no worker node is registered"
    assert never_fits_reason(Demand(4), [Capacity("x", 8, 0, 0)]) is None


def test_a_new_node_makes_a_never_fitting_job_runnable() -> None:
    sched = farm(node("a", cores=8))
    sched.submit(job("huge", cores=64))
    assert placed(sched) == {}
    sched.upsert_node(node("giant", cores=64))
    assert placed(sched, 1.0) == {"huge": "giant"}


def test_backfill_uses_time_limits_and_never_delays_the_reservation() -> None:
    # 'a' has 8 cores; 6 are busy until t=100 (time limit). A whole-node job must wait.
    sched = farm(node("a", cores=8, max_jobs=8))
    sched.add_running(RunningJob("r", "a", Demand(6), started_at=0.0, time_limit_s=100.0))
    sched.submit(job("big", cores=8, prio=9, seq=1, limit=1000))
    sched.submit(job("short", cores=1, prio=1, seq=2, limit=50))    # ends by t=50 < 100
    sched.submit(job("long", cores=1, prio=1, seq=3, limit=500))    # would delay 'big'
    sched.submit(job("forever", cores=1, prio=1, seq=4, limit=None))  # no limit
    got = sched.schedule(0.0)
    assert [(p.job_id, p.backfill) for p in got] == [("short", True)]
    big = sched.why_pending("big")
    assert big is not None and big.node == "a" and big.start_by == 100.0
    for name in ("long", "forever"):
        reason = sched.why_pending(name)
        assert reason is not None and reason.code == "reserved" and "job big" in reason.message
    # the reservation is honoured: 'big' starts as soon as the node is empty
    sched.finish("r")
    sched.finish("short")
    assert placed(sched, 60.0) == {"big": "a"}


def test_higher_ranked_job_avoids_a_lower_ranked_reservation_when_it_can() -> None:
    # 'a' drains first (t=100), so the waiting whole-node job reserves it; both nodes
    # have 4 free cores now. A better-ranked job may use reserved resources, but when an
    # equal node would leave the reservation intact it takes that one instead.
    sched = farm(node("a", cores=8), node("b", cores=8))
    sched.add_running(RunningJob("r", "a", Demand(4), started_at=0.0, time_limit_s=100.0))
    sched.add_running(RunningJob("s", "b", Demand(4), started_at=0.0, time_limit_s=5000.0))
    sched.submit(job("big", cores=8, prio=1, seq=1, limit=1000))
    assert placed(sched) == {}
    big = sched.why_pending("big")
    assert big is not None and big.node == "a" and big.start_by == 100.0
    sched.submit(job("urgent", cores=2, prio=9, seq=2, limit=600))
    assert placed(sched, 1.0) == {"urgent": "b"}
    big = sched.why_pending("big")
    assert big is not None and big.node == "a" and big.start_by == 100.0


def test_no_limit_job_backfills_only_outside_the_reservation() -> None:
    sched = farm(node("a", cores=8))
    sched.add_running(RunningJob("r", "a", Demand(4), started_at=0.0, time_limit_s=100.0))
    sched.submit(job("big", cores=6, prio=9, seq=1))
    sched.submit(job("free1", cores=2, prio=1, seq=2, limit=None))  # 6 + 2 <= 8: fits beside
    sched.submit(job("free2", cores=2, prio=1, seq=3, limit=None))  # would eat into 'big'
    assert placed(sched) == {"free1": "a"}


def test_backfill_off_keeps_strict_order() -> None:
    sched = farm(node("a", cores=8),
                 config=PolicyConfig(backfill=BackfillMode.NONE, aging_s_per_priority=None))
    sched.add_running(RunningJob("r", "a", Demand(6), started_at=0.0, time_limit_s=100.0))
    sched.submit(job("big", cores=4, prio=9, seq=1))
    sched.submit(job("short", cores=1, prio=1, seq=2, limit=10))
    assert placed(sched) == {}
    reason = sched.why_pending("short")
    assert reason is not None and reason.code == "order"


def test_greedy_mode_lets_small_jobs_starve_a_big_one() -> None:
    sched = farm(node("a", cores=8),
                 config=PolicyConfig(backfill=BackfillMode.GREEDY, aging_s_per_priority=None))
    sched.add_running(RunningJob("r", "a", Demand(6), started_at=0.0, time_limit_s=100.0))
    sched.submit(job("big", cores=4, prio=9, seq=1))
    sched.submit(job("long", cores=2, prio=1, seq=2, limit=5000))
    assert placed(sched) == {"long": "a"}


def test_held_node_takes_nothing_and_says_why_until_released() -> None:
    sched = farm(node("a", cores=8, held="cpu 97% > max 90%"))
    sched.submit(job("j"))
    assert placed(sched) == {}
    reason = sched.why_pending("j")
    assert reason is not None and reason.code == "held" and "cpu 97%" in reason.message
    assert [n.code for n in sched.shape_waits().values() if n] == ["held"]
    sched.upsert_node(node("a", cores=8, held="cpu 99% > max 90%"))  # new words only
    assert placed(sched, 0.5) == {}
    (note,) = sched.shape_waits().values()
    assert note is not None and "cpu 99%" in explain(note, "j", 0.5).message
    sched.upsert_node(node("a", cores=8))
    assert placed(sched, 1.0) == {"j": "a"}
    assert sched.shape_waits() == {shape_key(Demand(), 600.0): None}  # nothing waits


def test_slots_limit_concurrent_jobs() -> None:
    sched = farm(node("a", cores=8, max_jobs=2))
    for i in range(3):
        sched.submit(job(f"j{i}", seq=i))
    assert list(placed(sched)) == ["j0", "j1"]


def test_priority_change_while_pending_reorders() -> None:
    sched = farm(node("a", cores=1, max_jobs=1))
    sched.submit(job("first", seq=1))
    sched.submit(job("second", seq=2))
    assert sched.set_priority("second", 9)
    assert placed(sched) == {"second": "a"}
    assert not sched.set_priority("second", 1)  # running now: not pending


def test_withdraw_and_lost_node() -> None:
    sched = farm(node("a", cores=1, max_jobs=1), node("b", cores=1, max_jobs=1))
    sched.submit(job("x", seq=1))
    sched.submit(job("y", seq=2))
    sched.submit(job("z", seq=3))
    assert sched.withdraw("z")
    where = placed(sched)
    assert set(where) == {"x", "y"}
    lost = sched.remove_node(where["x"])
    assert lost == ["x"]
    sched.submit(job("x", seq=1))  # the dispatcher re-queues it
    assert placed(sched, 1.0) == {}
    sched.finish("y")
    assert placed(sched, 2.0) == {"x": where["y"]}


def test_aging_lets_an_old_low_priority_job_pass_newer_high_priority_ones() -> None:
    sched = farm(node("a", cores=1, max_jobs=1),
                 config=PolicyConfig(aging_s_per_priority=60.0))
    sched.submit(job("old", prio=1, seq=1, at=0.0))
    sched.submit(job("new", prio=3, seq=2, at=500.0))  # 2 levels = 120 s < 500 s of waiting
    assert placed(sched, 500.0) == {"old": "a"}


def test_size_credit_puts_a_large_job_ahead_of_a_small_one_of_higher_priority() -> None:
    # 16 cores at 450 s each outweigh one priority level (3600 s) twice over: the
    # 16-core priority-4 job ranks as if submitted 2 levels earlier than it is.
    def order(config: PolicyConfig) -> list[str]:
        sched = farm(node("a", cores=16, max_jobs=1), config=config)
        sched.submit(job("small", cores=1, prio=5, seq=1))
        sched.submit(job("wide", cores=16, prio=4, seq=2))
        first = list(placed(sched))
        return first + [j for j in ("small", "wide") if j not in first]

    assert order(PolicyConfig()) == ["wide", "small"]
    assert order(PolicyConfig(size_credit_s_per_core=0.0)) == ["small", "wide"]
    assert order(STRICT) == ["small", "wide"]  # no aging: priority alone decides


def test_reservation_moves_earlier_when_a_job_ends_before_its_limit() -> None:
    # 'a' is full until t=1000 and 'b' until t=2000 (time limits), so the whole-node job
    # reserves 'a' at 1000. Then a job on 'b' ends early: 'b' is now planned to have room
    # at t=300, the reservation moves there, and a lower-ranked job that would run past
    # 300 may no longer fill 'b'.
    sched = farm(node("a", cores=8), node("b", cores=8))
    sched.add_running(RunningJob("r", "a", Demand(8), started_at=0.0, time_limit_s=1000.0))
    sched.add_running(RunningJob("s1", "b", Demand(4), started_at=0.0, time_limit_s=2000.0))
    sched.add_running(RunningJob("s2", "b", Demand(4), started_at=0.0, time_limit_s=300.0))
    sched.submit(job("big", cores=8, prio=9, seq=1, limit=1000))
    assert placed(sched) == {}
    big = sched.why_pending("big")
    assert big is not None and (big.node, big.start_by) == ("a", 1000.0)
    sched.finish("s1")
    sched.submit(job("fill", cores=4, prio=1, seq=2, limit=500))
    assert placed(sched, 10.0) == {}
    big = sched.why_pending("big")
    assert big is not None and (big.node, big.start_by) == ("b", 300.0)
    fill = sched.why_pending("fill")
    assert fill is not None and fill.code == "reserved" and "job big" in fill.message
    sched.finish("s2")
    assert placed(sched, 250.0) == {"big": "b"}


def test_overrunning_job_pushes_the_reservation_back() -> None:
    sched = farm(node("a", cores=4))
    sched.add_running(RunningJob("r", "a", Demand(4), started_at=0.0, time_limit_s=100.0))
    sched.submit(job("next", cores=4, prio=9, seq=1))
    assert placed(sched, 0.0) == {}
    reason = sched.why_pending("next")
    assert reason is not None and reason.start_by == 100.0
    assert placed(sched, 150.0) == {}  # 'r' still running past its limit
    reason = sched.why_pending("next")
    assert reason is not None and reason.start_by is not None and reason.start_by > 150.0


@pytest.mark.parametrize("mode", list(BackfillMode))
def test_every_mode_eventually_runs_everything(mode: BackfillMode) -> None:
    sched = farm(node("a", cores=4), node("b", cores=8), config=PolicyConfig(backfill=mode))
    for i in range(30):
        sched.submit(job(f"j{i}", cores=1 + i % 8, prio=i % 3, seq=i, limit=10.0 + i))
    now, done = 0.0, 0
    running: dict[str, float] = {}
    while done < 30:
        for p in sched.schedule(now):
            running[p.job_id] = now + 5.0
        now = min(running.values())
        for job_id in [j for j, end in running.items() if end <= now]:
            sched.finish(job_id)
            del running[job_id]
            done += 1
    assert not any(sched.is_pending(f"j{i}") for i in range(30))


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("mode", list(BackfillMode))
def test_notes_written_only_on_change_say_what_recomputing_every_reason_says(
    mode: BackfillMode, pooled: bool,
) -> None:
    # The dispatcher stores one note per request shape, and only when shape_waits() says
    # it may have changed; a reader renders it for each job. Whatever happens (jobs
    # starting, ending, withdrawn, re-prioritised, a node held and released), that must
    # read exactly as recomputing every job's reason would.
    sched = farm(node("a", cores=4, max_jobs=3), node("b", cores=8),
                 config=PolicyConfig(backfill=mode))
    notes: dict[str, ShapeWait] = {}
    shape_of_job: dict[str, str] = {}
    if pooled:  # every third job also needs floating licences of a farm pool
        sched.set_pools([PoolView("anshpc", 6, 0, "1055@lic01")])
    for i in range(40):
        j = job(f"j{i}", cores=1 + i % 5, prio=i % 3, seq=i, limit=10.0 + i % 4 * 20)
        if pooled and i % 3 == 0:
            j = PendingJob(j.id, j.priority, j.seq, Demand(j.demand.cores, pool={"anshpc": 2}),
                           j.time_limit_s, j.submitted_at)
        sched.submit(j)
        shape_of_job[j.id] = shape_key(j.demand, j.time_limit_s)
    huge = job("huge", cores=16, seq=99)
    shape_of_job["huge"] = shape_key(huge.demand, huge.time_limit_s)
    now, done = 0.0, 0
    running: dict[str, float] = {}
    for step in range(200):
        for p in sched.schedule(now):
            running[p.job_id] = now + 3.0 + step % 7
        for name, note in sched.shape_waits().items():
            if note is None:
                notes.pop(name, None)
            else:
                notes[name] = note
        for job_id in shape_of_job:
            reason = sched.why_pending(job_id)
            if reason is not None:
                assert explain(notes[shape_of_job[job_id]], job_id, now) == reason, (step, job_id)
        if step == 5:
            last, other = [f"j{i}" for i in range(39, -1, -1) if sched.is_pending(f"j{i}")][:2]
            assert sched.withdraw(last) and sched.set_priority(other, 9)
        if step == 3:
            sched.upsert_node(node("b", cores=8, held="CPU 95% > max 90%"))
            sched.upsert_node(node("a", cores=4, max_jobs=3, held="max_jobs is 0"))
        if step == 4:  # only the words change
            sched.upsert_node(node("b", cores=8, held="CPU 97% > max 90%"))
            sched.upsert_node(node("a", cores=4, max_jobs=3, held="CPU 99% > max 90%"))
        if step == 6:
            sched.upsert_node(node("b", cores=8))
            sched.upsert_node(node("a", cores=4, max_jobs=3))
            sched.submit(huge)
        if step == 8:
            sched.upsert_node(node("c", cores=16))
        if pooled and step == 2:  # people outside the farm take licences, then return them
            sched.set_pools([PoolView("anshpc", 3, 3, "1055@lic01")])
        if pooled and step == 9:
            sched.set_pools([PoolView("anshpc", 6, 0, "1055@lic01")])
        if not running and not any(sched.is_pending(j) for j in shape_of_job):
            break
        now = min(running.values(), default=now + 1.0)
        for job_id in [j for j, end in running.items() if end <= now]:
            sched.finish(job_id)
            del running[job_id]
            done += 1
    assert done == 39 + 1

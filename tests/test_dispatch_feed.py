"""The dispatcher's feed against a real redis-server: a round reads what changed, not the
queue, and the one note per request shape reads, for every waiting job, as its reason."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from simfarm.common.models import JobSpec, NodeInfo
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.gates import GATE_DEPENDENCIES, GateStore
from simfarm.workers.dispatch import PolicyConfig
from simfarm.workers.dispatch.feed import SchedulerFeed
from tests.conftest import RedisServer
from tests.helpers import CountingRedis


class Farm:
    """A store under a prefix of its own, one 2-slot node and a feed, placing as the
    dispatcher does (a transition to scheduled per placement, then ``placed``)."""

    def __init__(self, url: str) -> None:
        self.prefix = f"feed-{uuid.uuid4().hex[:8]}:"
        self.redis = CountingRedis.from_url(url)
        self.jobs = JobStore(self.redis, self.prefix)
        self.nodes = NodeStore(self.redis, self.prefix)
        self.nodes.heartbeat(NodeInfo(name="n1", hostname="n1", queue="q.n1", cores_total=2,
                                      memory_mb_total=4096, max_jobs=2, boot_id="b1"), 60)
        # timers far away: a round's commands are then exactly what it had to read
        self.feed = SchedulerFeed(self.jobs, self.nodes, PolicyConfig(), node_every_s=3600,
                                  trim_every_s=3600)
        self.notes_written = 0

    def submit(self, count: int, **spec: object) -> list[str]:
        ids = [uuid.uuid4().hex for _ in range(count)]
        self.jobs.create_batch([(i, JobSpec(argv=["true"], **spec), {}) for i in ids])
        return ids

    def round(self) -> tuple[list[str], int]:
        """One dispatch round; (jobs placed, Redis commands it sent)."""
        before = CountingRedis.commands
        now = time.time()
        self.feed.refresh(now)
        placed = []
        for p in self.feed.scheduler.schedule(now):
            self.jobs.transition(p.job_id, JobState.SCHEDULED, new_attempt=True,
                                 fields={"node": p.node})
            self.feed.placed(p)
            placed.append(p.job_id)
        self.notes_written = self.feed.write_waits()
        return placed, CountingRedis.commands - before

    def finish(self, job_id: str) -> None:
        self.jobs.transition(job_id, JobState.RUNNING)
        self.jobs.transition(job_id, JobState.COMPLETED)

    def close(self) -> None:
        keys = list(self.redis.scan_iter(f"{self.prefix}*", count=10_000))
        for start in range(0, len(keys), 10_000):
            self.redis.delete(*keys[start : start + 10_000])
        self.redis.close()


@pytest.fixture
def farm(redis_server: RedisServer) -> Iterator[Farm]:
    the_farm = Farm(redis_server.url)
    yield the_farm
    the_farm.close()


def test_a_round_costs_what_changed_not_the_depth_of_the_queue(farm: Farm) -> None:
    first = farm.submit(1000)
    placed, _ = farm.round()  # loads the queue once
    assert placed == first[:2]
    quiet_small = farm.round()
    farm.submit(5_000)
    rounds = 0
    while farm.round()[1] > quiet_small[1]:  # reading the creations: what changed
        rounds += 1
    assert rounds == 1  # the 5,000 creations: one round reads up to 10,000 events
    quiet_large = farm.round()
    assert quiet_large == quiet_small and quiet_small[0] == []
    assert quiet_small[1] == 2  # the event stream and the node version, nothing else
    # A job ends: the next one starts, and the round still reads only what changed.
    farm.finish(first[0])
    placed, commands = farm.round()
    assert placed == [first[2]]
    assert commands <= 12, commands


def test_one_note_per_shape_is_every_waiting_job_s_reason(farm: Farm) -> None:
    ids = farm.submit(50)
    farm.round()
    head, second, last = ids[2], ids[3], ids[-1]
    reasons = {j.id: j.reason for j in farm.jobs.get_many([head, second, last])}
    assert reasons[head] is not None and reasons[head].startswith(
        "waiting for 1 core on one of 1 node(s) that can run it; reserved on n1, starting by ")
    assert reasons[second] == reasons[last] == (
        f"waiting behind job {head}, which has the same request")
    # The head starts: one note is rewritten, and every waiting job names the new head.
    farm.finish(ids[0])
    assert farm.round()[0] == [head] and farm.notes_written == 1
    assert farm.jobs.get(last).reason == f"waiting behind job {second}, which has the same request"
    # A reason of the job's own that is newer than the note wins until the note changes.
    farm.jobs.transition(ids[1], JobState.PENDING, sources=[JobState.SCHEDULED],
                         fields={"node": None, "reason": "worker lost (n1: node lost)"})
    assert farm.jobs.get(ids[1]).reason == "worker lost (n1: node lost)"


def test_events_cancel_reprioritise_hold_release_and_requeue(farm: Farm) -> None:
    a, b, c = farm.submit(3)
    (late,) = farm.submit(1, priority=1)
    farm.round()  # a and b start; c and late wait
    (held,) = farm.submit(1, priority=9)
    gates = GateStore.sharing(farm.jobs)
    gates.close(held, GATE_DEPENDENCIES, "waiting for x")
    farm.jobs.request_cancel(c)
    farm.jobs.set_priority(late, 8)
    farm.finish(a)
    assert farm.round()[0] == [late]  # c was cancelled; the held job may not start
    gates.open(held)
    # b is handed back to the queue (its worker was lost): the released job takes its
    # slot (priority 9), and b starts again when the next slot frees
    farm.jobs.transition(b, JobState.PENDING, sources=[JobState.SCHEDULED],
                         fields={"node": None, "reason": "worker lost"})
    assert farm.round()[0] == [held]
    farm.finish(late)
    assert farm.round()[0] == [b]


def test_fair_share_usage_goes_on_from_the_stored_count_after_a_failover(farm: Farm) -> None:
    ids = [uuid.uuid4().hex for _ in range(3)]
    farm.jobs.create_batch([(i, JobSpec(argv=["true"], account="cfd"), {"account": "cfd"})
                            for i in ids], owner="ann")
    start = time.time()
    farm.feed.refresh(start)
    placed = farm.feed.scheduler.schedule(start)
    assert len(placed) == 2  # two slots, one core each
    for p in placed:
        farm.jobs.transition(p.job_id, JobState.SCHEDULED, new_attempt=True,
                             fields={"node": p.node})
        farm.feed.placed(p)
    farm.feed.refresh(start + 100)
    farm.feed.scheduler.schedule(start + 100)
    assert farm.feed.save_usage(force=True)
    counted = farm.feed.scheduler.shares.usage()[("cfd", "ann")]
    assert counted == pytest.approx(2 * 100, rel=0.01)
    # the leader dies; the next one loads the stored count and the running jobs
    successor = SchedulerFeed(farm.jobs, farm.nodes, PolicyConfig(), node_every_s=3600,
                              trim_every_s=3600)
    successor.refresh(start + 150)
    assert not successor.scheduler.schedule(start + 200)  # the third job still waits
    usage = successor.scheduler.shares.usage()[("cfd", "ann")]
    assert usage == pytest.approx(2 * 200, rel=0.01)  # both jobs, all the time, once
    waiting = next(i for i in ids if i not in {p.job_id for p in placed})
    assert successor.scheduler.is_pending(waiting)


def test_a_queued_job_is_placed_from_the_read_that_queued_it(farm: Farm) -> None:
    """What placing a job needs (its attempt, name and request) comes from the read that
    queued it, so placing a job queued long ago reads nothing more; a job requeued is read
    again at its new attempt, and one that leaves the queue is forgotten."""
    ids = farm.submit(3, name="queued")
    placed, _ = farm.round()  # loads the queue, places two
    assert placed == ids[:2]
    waiting = farm.feed.placing
    assert set(waiting) == {ids[2]}
    assert (waiting[ids[2]].attempt, waiting[ids[2]].name) == (0, "queued")
    farm.jobs.transition(placed[0], JobState.PENDING)  # handed back to the queue...
    urgent = farm.submit(1, priority=9)  # ...while a more urgent job takes its slot
    farm.jobs.transition(ids[2], JobState.CANCELLED)
    assert farm.round()[0] == urgent
    assert set(waiting) == {placed[0]}  # the cancelled one is forgotten
    assert waiting[placed[0]].attempt == 1  # read again at the attempt it is at now
    farm.finish(placed[1])
    assert farm.round()[0] == [placed[0]]
    assert waiting == {} and farm.jobs.attempt(placed[0]).number == 2

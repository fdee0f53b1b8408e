"""The bound order of nodes kept per core count finds what trying every node finds."""

from __future__ import annotations

import random

import pytest

from simfarm.common.capacity import Capacity
from simfarm.workers.dispatch import bounds
from simfarm.workers.dispatch.bounds import BoundIndex, earliest_indexed
from simfarm.workers.dispatch.nodes import INF, Hold, NodeState, Run, earliest_node


def _check_all(index: BoundIndex, nodes: list[NodeState], rng: random.Random,
               now: float) -> None:
    for c in (1, 2, 4, 8, 16, 32):
        fresh = sorted((b, n.index) for n in nodes if (b := n.cores_free_from(c)) < INF)
        assert [(b, i) for b, i, _ in index.ranked(c)] == fresh
        eligible = [n for n in nodes if rng.random() < 0.7]
        eligible_set = {n.index for n in eligible}
        length = rng.choice([60.0, 600.0, 3600.0])
        key = (rng.uniform(0, 100), rng.randrange(1000))
        want = earliest_node(eligible, c, 1000, 0, {}, length, now, key)
        got = earliest_indexed(index.ranked(c), eligible_set, c, 1000, 0, {}, length, now,
                               key)
        assert got == want, (c, got, want)


def test_same_node_and_time_as_trying_every_node_while_jobs_come_and_go() -> None:
    rng = random.Random(7)
    index = BoundIndex()
    nodes = [NodeState(Capacity(f"n{i}", rng.choice([8, 16, 32]), 64_000, 100_000,
                                max_jobs=8), i) for i in range(30)]
    for node in nodes:
        index.add(node)
    runs: list[Run] = []
    now = 0.0
    for step in range(400):
        now += rng.uniform(0, 30)
        node = rng.choice(nodes)
        action = rng.random()
        if action < 0.6 and node.free_s and node.free_c:  # a busy farm: most starts wait
            cores = rng.randint(max(1, node.free_c // 2), node.free_c)
            run = Run(f"j{step}", node, cores, 1000, 0, {},
                      now + rng.uniform(10, 5000), (0.0, step))
            node.add_run(run)
            runs.append(run)
        elif action < 0.75 and runs:
            run = runs.pop(rng.randrange(len(runs)))
            run.node.remove_run(run.job_id)
        elif action < 0.88 and runs:
            run = rng.choice(runs)
            run.node.set_end(run, run.end + 60.0)
        elif action < 0.94:
            node.held = None if node.held else "held"
        else:  # a reservation ahead of some requests, behind others
            node.holds.append(Hold(None, f"h{step}", (rng.uniform(0, 100), step), node,
                                   now + 100.0, now + 2000.0, 2, 1000, 0, {}))
        if step % 3 == 0:
            _check_all(index, nodes, rng, now)


def test_a_long_change_log_is_dropped_and_the_orders_rebuilt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounds, "LOG_MAX", 5)
    index = BoundIndex()
    nodes = [NodeState(Capacity(f"n{i}", 8, 64_000, 100_000, max_jobs=4), i)
             for i in range(3)]
    for node in nodes:
        index.add(node)
    assert [i for _, i, _ in index.ranked(4)] == [0, 1, 2]
    for k in range(12):  # more changes than the log keeps
        node = nodes[k % 2]
        node.add_run(Run(f"j{k}", node, 1, 10, 0, {}, 100.0 * (k + 1), (0.0, k)))
        assert len(index.log) < 5
    assert [(b, i) for b, i, _ in index.ranked(4)] == [(-float("inf"), 2), (300.0, 0),
                                                        (400.0, 1)]
    index.remove(nodes[2])
    assert [i for _, i, _ in index.ranked(4)] == [0, 1]

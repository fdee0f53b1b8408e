"""The scheduling benchmark's independent audit, on small seeded farms, in every CI run:
whatever the policy decides, no node is over-committed, every job runs, and no job starts
ahead of a better-ranked one unless it leaves that job's reservation intact."""

from __future__ import annotations

import random

import pytest

from benchmarks.bench_scheduling import make_jobs, make_nodes, simulate
from simfarm.workers.dispatch import BackfillMode


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("load", [1.0, 1.5])
@pytest.mark.parametrize("mode", list(BackfillMode))
def test_every_decision_passes_the_audit(mode: BackfillMode, load: float, seed: int) -> None:
    rng = random.Random(seed)
    nodes = make_nodes(30, rng)
    jobs = make_jobs(1500, nodes, rng, load)
    result = simulate(mode, nodes, jobs, audit=True)
    assert result.auditor.undocumented == []
    assert all(job.start is not None for job in result.jobs)
    assert result.decisions == len(jobs)
    assert result.makespan >= result.bound

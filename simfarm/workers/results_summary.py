"""The end of every attempt on this node: a compact summary of the results worth
drawing, stored with the job in the same transition as its outcome. Today that is the
job's Touchstone files (``.sNp``, :mod:`simfarm.common.touchstone`): looked for in the
folder the job ran in (top level), an HFSS project's folder and, recursively, its
``.aedtresults``; for a staged job that is the scratch copy, before the results are
sent back, so both file modes get the same summary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from simfarm.common.models import Job
from simfarm.common.touchstone import TouchstoneSummary, is_touchstone, summarize
from simfarm.workers.attempt import AttemptSupervisor, Runner
from simfarm.workers.outcome import Outcome

log = logging.getLogger(__name__)
MAX_FILES = 8
MAX_SCANNED = 20_000  # directory entries looked at under a results folder


def with_results_summary(runner: Runner) -> Runner:
    """``runner``, followed by the results summary of the job it ran."""

    def run(supervisor: AttemptSupervisor, job: Job) -> Outcome:
        outcome = runner(supervisor, job)
        if outcome.interrupted:
            return outcome
        try:
            found = touchstone_summaries(job)
        except OSError as exc:
            log.warning("job %s: results not summarised: %s", job.id, exc)
            return outcome
        if found:
            outcome.fields["touchstone"] = [s.model_dump(mode="json") for s in found]
            outcome.fields["touchstone_files"] = [s.name for s in found]  # cheap to check
            log.info("job %s: %d Touchstone file(s) summarised", job.id, len(found))
        return outcome

    return run


def _candidates(job: Job) -> Iterator[tuple[Path, Path]]:
    """``(file, folder it is named relative to)`` for every place a job leaves results."""
    tops: list[Path] = []
    if job.spec.cwd:
        tops.append(Path(job.spec.cwd))
    if job.spec.hfss is not None:
        project = Path(job.spec.hfss.project_path)
        tops.append(project.parent)
        results = project.with_suffix(".aedtresults")
        if results.is_dir():
            scanned = 0
            for path in sorted(results.rglob("*")):
                scanned += 1
                if scanned > MAX_SCANNED:
                    break
                if path.is_file():
                    yield path, project.parent
    for top in dict.fromkeys(tops):
        if top.is_dir():
            for path in sorted(top.iterdir()):
                if path.is_file():
                    yield path, top


def touchstone_summaries(job: Job) -> list[TouchstoneSummary]:
    """Summaries of the job's Touchstone files (at most :data:`MAX_FILES`)."""
    out: list[TouchstoneSummary] = []
    seen: set[Path] = set()
    for path, base in _candidates(job):
        if not is_touchstone(path) or path in seen:
            continue
        seen.add(path)
        out.append(summarize(path, path.relative_to(base).as_posix()))
        if len(out) >= MAX_FILES:
            break
    return out

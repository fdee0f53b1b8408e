"""The gate keeper: lets gated jobs start when their dependencies are met and their
sweep's throttle has room, and cancels those whose dependencies can never be met.

It runs in the active dispatcher's loop, just before each placement round, so only one
process opens gates at a time (which is what keeps a sweep under its throttle). It looks
only at jobs queued for a check (gated jobs when created, watched jobs when they end),
plus, every ``full_pass_s``, at every gated job as a safety net. A job a user holds
(state ``held``) is not pending, so no gate opens for it; when it is released its gate is
looked at again.
"""

from __future__ import annotations

import logging
import time

from simfarm.common.deps import DEPENDENCY_FAILED, verdict
from simfarm.common.errors import IllegalTransition, JobNotFound, StaleAttempt
from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from simfarm.common.store.gates import GATE_DEPENDENCIES, GATE_THROTTLE, GateStore
from simfarm.common.store.sweeps import SweepStore
from simfarm.common.sweeps import throttle_reason

log = logging.getLogger(__name__)

CHECK_BATCH = 1000
FULL_PASS_LIMIT = 5000
ACTIVE = (JobState.SCHEDULED, JobState.RUNNING)


class GateKeeper:
    """Applies dependencies and sweep throttles to gated pending jobs."""

    def __init__(
        self, jobs: JobStore, gates: GateStore, sweeps: SweepStore, full_pass_s: float = 15.0
    ) -> None:
        self.jobs = jobs
        self.gates = gates
        self.sweeps = sweeps
        self.full_pass_s = full_pass_s
        self._next_full = 0.0

    @classmethod
    def for_store(cls, jobs: JobStore) -> GateKeeper:
        """A gate keeper sharing the job store's connection and key prefix."""
        return cls(
            jobs,
            GateStore.sharing(jobs),
            SweepStore(jobs.connection, jobs.keys.prefix),
        )

    def run_once(self) -> int:
        """One pass; returns how many jobs were let through or cancelled."""
        ids = self.gates.pop_checks(CHECK_BATCH)
        now = time.monotonic()
        if now >= self._next_full:
            self._next_full = now + self.full_pass_s
            ids += self.jobs.gated_ids(FULL_PASS_LIMIT)
        if not ids:
            return 0
        gated: dict[str, Job] = {}
        ended: list[str] = []
        sweeps: set[str] = set()
        for job in self.jobs.get_many(list(dict.fromkeys(ids))):
            if job.state is JobState.PENDING and job.gate:
                gated[job.id] = job
            elif job.final:
                ended.append(job.id)
                if job.sweep_id:
                    sweeps.add(job.sweep_id)
        waiting = [d for job_id in ended for d in self.gates.dependents(job_id)]
        for job in self.jobs.get_many([d for d in dict.fromkeys(waiting) if d not in gated]):
            if job.state is JobState.PENDING and job.gate:
                gated[job.id] = job
        changed = 0
        for job in gated.values():
            if job.gate == GATE_DEPENDENCIES:
                changed += self._judge_dependencies(job, sweeps)
            elif job.gate == GATE_THROTTLE and job.sweep_id:
                sweeps.add(job.sweep_id)
            else:
                log.warning("job %s: unknown gate %r; opening it", job.id, job.gate)
                changed += self.gates.open(job.id)
        for sweep_id in sorted(sweeps):
            changed += self._fill_sweep(sweep_id)
        return changed

    def _judge_dependencies(self, job: Job, sweeps: set[str]) -> int:
        deps = job.dependencies or {}
        states = self.gates.states(i for ids in deps.values() for i in ids)
        result = verdict(deps, states)
        if result.status == "never":
            try:
                self.jobs.transition(
                    job.id, JobState.CANCELLED, sources=[JobState.PENDING],
                    fields={"reason": DEPENDENCY_FAILED, "gate": None},
                    event={"reason": DEPENDENCY_FAILED, "detail": result.detail},
                )
            except (IllegalTransition, StaleAttempt, JobNotFound):
                return 0
            log.info("job %s: cancelled: %s (%s)", job.id, DEPENDENCY_FAILED, result.detail)
            return 1
        if result.status == "wait":
            self.gates.close(job.id, GATE_DEPENDENCIES, result.detail)
            return 0
        throttle = self.sweeps.throttle(job.sweep_id) if job.sweep_id else None
        if job.sweep_id and throttle:
            self.gates.close(job.id, GATE_THROTTLE, throttle_reason(throttle))
            sweeps.add(job.sweep_id)
            return 0
        return int(self.gates.open(job.id))

    def _fill_sweep(self, sweep_id: str) -> int:
        """Let throttled children through, in index order, while the sweep has room."""
        throttle = self.sweeps.throttle(sweep_id)
        children = self.gates.brief(self.sweeps.child_ids(sweep_id))
        if throttle is None:
            return sum(self.gates.open(job_id) for job_id, _, gate, _ in children
                       if gate == GATE_THROTTLE)
        active = sum(1 for _, state, gate, _ in children
                     if state in ACTIVE or (state is JobState.PENDING and not gate))
        opened = 0
        wanted = throttle_reason(throttle)
        for job_id, state, gate, reason in children:
            if gate != GATE_THROTTLE or state is not JobState.PENDING:
                continue
            if active >= throttle:
                if reason != wanted:
                    self.gates.close(job_id, GATE_THROTTLE, wanted)
                continue
            if self.gates.open(job_id):
                active += 1
                opened += 1
        if opened:
            log.info("sweep %s: let %d children through (%d of %d active)", sweep_id, opened,
                     active, throttle)
        return opened

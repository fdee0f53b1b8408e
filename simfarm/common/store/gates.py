"""Gated pending jobs: waiting for dependencies or for room under a sweep's throttle.

A gated job is ``pending`` for every reader (its ``gate`` says why it may not start yet)
but ranked after every startable job, so the dispatcher (which reads
:meth:`JobStore.pending_ids`) never sees it. Jobs that other jobs wait for are
*watched*: when one ends, the state-change script adds it to the ``gates:check`` set,
and the gate keeper (run by the active dispatcher) looks at its dependents again. Gated
jobs themselves are added there when created.

Not to be confused with a user's hold: a job someone holds is in the state ``held``
(``pending ⇄ held``, see :mod:`simfarm.common.states`), which no gate changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import cast

import redis

from simfarm.common.states import JobState
from simfarm.common.store import scripts
from simfarm.common.store.streams import StreamingStore

log = logging.getLogger(__name__)

GATE_DEPENDENCIES = "dependencies"
GATE_THROTTLE = "throttle"


class GateStore(StreamingStore):
    """Gates closed and opened, and the bookkeeping that tells the gate keeper what to
    look at."""

    def _register_scripts(self, connection: redis.Redis) -> None:
        self._gate = scripts.register(connection, "gate", self.keys)

    def watch(self, job_id: str, dependencies: Iterable[str]) -> None:
        """Record that ``job_id`` waits for ``dependencies`` and queue it for a first look
        (after the watch is in place, so a dependency ending meanwhile is not missed)."""
        deps = list(dependencies)
        pipe = self.connection.pipeline(transaction=True)
        for dep in deps:
            pipe.sadd(self.keys.dependents(dep), job_id)
            pipe.hset(self.keys.job(dep), "watched", "1")
        pipe.sadd(self.keys.gate_checks, job_id)
        pipe.execute()

    def request_check(self, job_ids: Iterable[str]) -> None:
        """Have the gate keeper look at these jobs (gated ones, or ended ones'
        dependents)."""
        ids = list(job_ids)
        if ids:
            self.connection.sadd(self.keys.gate_checks, *ids)

    def pop_checks(self, count: int = 1000) -> list[str]:
        """Take up to ``count`` job ids waiting for a look."""
        ids = cast(list[bytes] | None, self.connection.spop(self.keys.gate_checks, count))
        return [i.decode() for i in ids or []]

    def dependents(self, job_id: str) -> list[str]:
        """Gated jobs that wait for ``job_id``."""
        members = cast(set[bytes], self.connection.smembers(self.keys.dependents(job_id)))
        return sorted(m.decode() for m in members)

    def states(self, job_ids: Iterable[str]) -> dict[str, JobState | None]:
        """The current state of each job (None for a job that no longer exists)."""
        ids = list(dict.fromkeys(job_ids))
        pipe = self.connection.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.keys.job(job_id), "state")
        return {job_id: (JobState(raw.decode()) if raw else None)
                for job_id, raw in zip(ids, pipe.execute(), strict=True)}

    def brief(self, job_ids: Iterable[str]) -> list[tuple[str, JobState | None, str, str]]:
        """``(id, state, gate code, reason)`` of each job, read without loading specs
        (the throttle check of a large sweep reads all its children)."""
        ids = list(job_ids)
        pipe = self.connection.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.keys.job(job_id), "state", "gate", "reason")
        out = []
        for job_id, (state, gate, reason) in zip(ids, pipe.execute(), strict=True):
            out.append((job_id, JobState(state.decode()) if state else None,
                        gate.decode() if gate else "", reason.decode() if reason else ""))
        return out

    def close(self, job_id: str, code: str, reason: str) -> bool:
        """Gate a pending job (or change why); False if it is no longer pending."""
        return self._call(job_id, code, reason)

    def open(self, job_id: str) -> bool:
        """Let a gated job start; False if it is no longer pending."""
        opened = self._call(job_id, "", "")
        if opened:
            log.info("job %s: gate opened", job_id)
        return opened

    def _call(self, job_id: str, code: str, reason: str) -> bool:
        k = self.keys
        result = self._gate(
            keys=[k.job(job_id), k.events, k.job_events(job_id)],
            args=[job_id, code, reason, repr(time.time()), self.events_global,
                  self.events_per_job],
        )
        status = result[0].decode() if isinstance(result[0], bytes) else str(result[0])
        return status == "ok"

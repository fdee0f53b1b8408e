"""The farm's floating licence pools in Redis: what each may hand out now, what farm jobs
hold, and how the last poll of its server went.

A job's licences are drawn by the transition that places it and given back by the one
that ends its attempt (:meth:`~.jobs.JobStore.transition`, lua/transition.lua and
lua/cancel.lua, helper ``return_licenses`` in lua/lib.lua); each holder keeps its share
in its ``licenses_held`` field, so :meth:`LicenseStore.reconcile` can recount the pools
from the jobs that hold them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import redis

from simfarm.common.license_pools import LicenseStatus
from simfarm.common.store import scripts
from simfarm.common.store.keys import Keys


class Reconciled(NamedTuple):
    """What :meth:`LicenseStore.reconcile` counted: per pool, held by every scheduled or
    running job, by the running ones only, and ``(pool, counted, recorded)`` drifts."""

    held: dict[str, int]
    running: dict[str, int]
    drift: list[tuple[str, int, int]]


def _counts(raw: Mapping[Any, Any]) -> dict[str, int]:
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}


class LicenseStore:
    """Reads and writes the licence pools."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)
        self._reconcile = scripts.register(connection, "licenses_reconcile", self.keys)

    def publish(self, statuses: Sequence[LicenseStatus]) -> None:
        """The pools as the dispatcher leader sees them now: each one's limit (what the
        transitions draw against) and status; pools no longer configured are forgotten."""
        k = self.keys
        names = {s.name for s in statuses}
        gone = [n.decode() for n in cast(list[bytes], self.connection.hkeys(k.licenses_limit))
                if n.decode() not in names]
        pipe = self.connection.pipeline(transaction=True)
        if statuses:
            pipe.hset(k.licenses_limit, mapping={s.name: s.limit for s in statuses})
            pipe.hset(k.licenses_status, mapping={
                s.name: s.model_dump_json(exclude={"held", "free", "waiting"})
                for s in statuses})
        if gone:
            pipe.hdel(k.licenses_limit, *gone)
            pipe.hdel(k.licenses_status, *gone)
        pipe.execute()

    def limits(self) -> dict[str, int]:
        """How many of each pool farm jobs may hold at once now."""
        return _counts(cast(dict[bytes, bytes], self.connection.hgetall(self.keys.licenses_limit)))

    def held(self) -> dict[str, int]:
        """How many of each pool farm jobs hold now."""
        return _counts(cast(dict[bytes, bytes], self.connection.hgetall(self.keys.licenses_held)))

    def statuses(self) -> dict[str, LicenseStatus]:
        """Every pool's last published status, with what farm jobs hold now and how many
        pending jobs need it."""
        pipe = self.connection.pipeline(transaction=False)
        pipe.hgetall(self.keys.licenses_status)
        pipe.hgetall(self.keys.licenses_held)
        pipe.hgetall(self.keys.licenses_waiting)
        raw, held, waiting = pipe.execute()
        counts, queued = _counts(held), _counts(waiting)
        out: dict[str, LicenseStatus] = {}
        for name, text in cast(dict[bytes, bytes], raw).items():
            status = LicenseStatus.model_validate_json(text).with_held(counts.get(
                name.decode(), 0))
            out[name.decode()] = status.model_copy(update={"waiting": queued.get(
                name.decode(), 0)})
        return out

    def set_waiting(self, waiting: Mapping[str, int]) -> None:
        """How many pending jobs need each pool (the dispatcher, when that changes)."""
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(self.keys.licenses_waiting)
        if waiting:
            pipe.hset(self.keys.licenses_waiting, mapping={k: str(n) for k, n in waiting.items()})
        pipe.execute()

    def reconcile(self, repair: bool = True) -> Reconciled:
        """Recount the pools from the jobs that hold them (one atomic script) and, with
        ``repair``, set the counts that drifted to what the jobs hold."""
        raw = json.loads(cast(bytes, self._reconcile(args=["1" if repair else "0"])))
        drift = raw.get("drift") or []
        return Reconciled({k: int(v) for k, v in (raw.get("held") or {}).items()},
                          {k: int(v) for k, v in (raw.get("running") or {}).items()},
                          [(str(d[0]), int(d[1]), int(d[2])) for d in drift])

    def holdings(self, job_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """The pool licences each of these jobs holds now (jobs holding none left out),
        in one round trip: for accounting (licence-seconds per user)."""
        pipe = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "licenses_held")
        out: dict[str, dict[str, int]] = {}
        for job_id, raw in zip(job_ids, pipe.execute(), strict=True):
            if raw:
                out[job_id] = {k: int(v) for k, v in json.loads(raw).items()}
        return out

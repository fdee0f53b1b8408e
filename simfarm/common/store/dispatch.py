"""What the dispatcher reads and writes besides transitions: the pending queue in
rank order, just the fields of a job that placement needs, and the notes on why jobs
of each request shape wait (``P dispatch:waits``, one hash field per shape)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import redis

from simfarm.common.models import ResourceRequest
from simfarm.common.states import JobState
from simfarm.common.store.jobs import GATED_BAND, RANK_STEP
from simfarm.common.store.keys import Keys
from simfarm.common.waiting import ShapeWait

_BRIEF = ["id", "state", "gate", "priority", "seq", "created_at", "started_at", "scheduled_at",
          "spec", "owner", "attempt"]


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the global event stream, as the dispatcher reads it (no model)."""

    id: str
    job_id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobBrief:
    """The fields of a job that placement needs, read without parsing the whole spec."""

    id: str
    state: str
    gate: str | None
    priority: int
    seq: int
    created_at: float
    #: when it started running, or was scheduled (None while pending)
    started_at: float | None
    resources: ResourceRequest
    timeout_s: float | None
    #: who pays: the job's owner and account ("" for none)
    owner: str = ""
    account: str = ""
    #: the attempt it is at, and its name: what sending its next attempt needs besides
    attempt: int = 0
    name: str | None = None

    @property
    def startable(self) -> bool:
        """Pending and not gated: the dispatcher may place it."""
        return self.state == JobState.PENDING.value and not self.gate

    def to_place(self) -> JobToPlace:
        """What placing it needs, as :meth:`DispatchStore.to_place` reads it."""
        return JobToPlace(self.id, self.state, self.attempt, self.name, self.resources)


@lru_cache(maxsize=4096)
def _resources(raw: str) -> ResourceRequest:
    return ResourceRequest.model_validate_json(raw)


def _brief(raw: Sequence[bytes | None]) -> JobBrief | None:
    job_id, state, gate, priority, seq, created, started, scheduled, spec_raw, owner, attempt = (
        v.decode() if v is not None else None for v in raw)
    if job_id is None or state is None or spec_raw is None:
        return None
    spec = json.loads(spec_raw)
    timeout = spec.get("timeout_s")
    # Specs are stored without defaults; jobs of a batch or sweep share their request,
    # so it is validated once per distinct request.
    resources = _resources(json.dumps(spec.get("resources", {}), sort_keys=True))
    began = started or scheduled
    # interned: the feed keeps one per queued job (JobToPlace), all "pending"
    return JobBrief(job_id, sys.intern(state), gate or None, int(priority or 0), int(seq or 0),
                    float(created or 0.0), float(began) if began else None, resources,
                    float(timeout) if timeout is not None else None, owner or "",
                    spec.get("account") or "", int(attempt or 0), spec.get("name"))


@dataclass(frozen=True, slots=True)
class JobToPlace:
    """What sending a job's next attempt needs (its Celery message, its licence draw),
    read without parsing the whole job."""

    id: str
    state: str
    #: the attempt it is at (its next one is this plus one)
    attempt: int
    name: str | None
    resources: ResourceRequest


class DispatchStore:
    """The dispatcher's reads of the queue and its notes on why jobs wait."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    def pending_entries(
        self, after: int | None = None, limit: int = 1000
    ) -> list[tuple[str, int, int, int]]:
        """``(id, priority, submit sequence, rank)`` of up to ``limit`` startable pending
        jobs ranked after ``after`` (a rank from a previous call), in rank order; read from
        the queue's scores alone."""
        low = f"({after}" if after is not None else "-inf"
        rows = self.connection.zrangebyscore(
            self.keys.state(JobState.PENDING.value), low, f"({GATED_BAND}",
            start=0, num=limit, withscores=True,
        )
        out = []
        for raw_id, score in cast(list[tuple[bytes, float]], rows):
            rank = int(score)
            out.append((raw_id.decode(), 10 - rank // RANK_STEP, rank % RANK_STEP, rank))
        return out

    def changes(self, since: str, count: int) -> tuple[list[Change], int]:
        """Up to ``count`` events of every job after event id ``since``, and the node
        version (:meth:`~.nodes.NodeStore.version`), in one round trip."""
        pipe = self.connection.pipeline(transaction=False)
        pipe.xread({self.keys.events: since}, count=count)
        pipe.get(self.keys.nodes_version)
        streams, version = pipe.execute()
        out = []
        for _stream, rows in cast(list[Any], streams or []):
            for eid, fields in rows:
                out.append(Change(eid.decode(), fields[b"job"].decode(), fields[b"type"].decode(),
                                  json.loads(fields[b"data"])))
        return out, int(version or 0)

    def briefs(self, job_ids: Sequence[str]) -> list[JobBrief]:
        """What placement needs of each job, in order; ids that no longer exist are left
        out. One round trip."""
        pipe = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self.keys.job(job_id), _BRIEF)
        found = (_brief(raw) for raw in pipe.execute())
        return [b for b in found if b is not None]

    def to_place(self, job_ids: Sequence[str]) -> dict[str, JobToPlace]:
        """What placing each job needs, by id; ids that no longer exist are left out.
        One round trip."""
        return {b.id: b.to_place() for b in self.briefs(job_ids)}

    def write_waits(self, notes: Mapping[str, ShapeWait | None], *, replace: bool = False) -> None:
        """Store the notes of these shapes (None removes one), stamped with the time;
        ``replace`` first forgets every other note (a new dispatcher's first write)."""
        if not notes and not replace:
            return
        key = self.keys.dispatch_waits
        now = time.time()
        pipe = self.connection.pipeline(transaction=replace)
        if replace:
            pipe.delete(key)
        gone = [name for name, note in notes.items() if note is None]
        if gone:
            pipe.hdel(key, *gone)
        kept = {name: note.stored(now) for name, note in notes.items() if note is not None}
        if kept:
            pipe.hset(key, mapping=kept)  # type: ignore[arg-type]
        pipe.execute()

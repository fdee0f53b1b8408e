"""The sweep store: sweep parents and the index of their children in Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis

from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.common.store.jobs import JobStore
from simfarm.common.store.keys import Keys
from simfarm.common.sweeps import Sweep, SweepChild, SweepSpec, sweep_state


class SweepStore:
    """Creates, reads and lists sweeps; their children are ordinary jobs in the job store
    carrying ``sweep_id`` and ``sweep_index``."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    def create(self, sweep_id: str, spec: SweepSpec, size: int, owner: str | None) -> None:
        """Store the parent of a sweep (its children are added with :meth:`add_children`)."""
        now = time.time()
        fields = {
            "id": sweep_id,
            "name": spec.name,
            "spec": spec.model_dump_json(),
            "size": str(size),
            "throttle": str(spec.throttle or ""),
            "created_at": repr(now),
            "owner": owner or "",
        }
        pipe = self.connection.pipeline(transaction=True)
        pipe.hset(self.keys.sweep(sweep_id), mapping=fields)  # type: ignore[arg-type]
        pipe.zadd(self.keys.sweeps, {sweep_id: now})
        pipe.execute()

    def add_children(self, sweep_id: str, ids_by_index: Mapping[str, int]) -> None:
        """Record child jobs with their indexes."""
        self.connection.zadd(self.keys.sweep_jobs(sweep_id), dict(ids_by_index))

    def exists(self, sweep_id: str) -> bool:
        """Whether a sweep with this id exists."""
        return bool(self.connection.exists(self.keys.sweep(sweep_id)))

    def throttle(self, sweep_id: str) -> int | None:
        """The sweep's throttle (most children at once), or None for no limit."""
        raw = cast(bytes | None, self.connection.hget(self.keys.sweep(sweep_id), "throttle"))
        return int(raw) if raw else None

    def child_ids(self, sweep_id: str) -> list[str]:
        """The children's job ids in index order."""
        ids = cast(list[bytes], self.connection.zrange(self.keys.sweep_jobs(sweep_id), 0, -1))
        return [i.decode() for i in ids]

    def child_count(self, sweep_id: str) -> int:
        """How many children the sweep has (O(1))."""
        return int(self.connection.zcard(self.keys.sweep_jobs(sweep_id)))

    def mark_cancelled(self, sweep_id: str) -> None:
        """Record that the user cancelled the sweep."""
        self.connection.hset(self.keys.sweep(sweep_id), "cancel_requested", "1")

    def get(self, sweep_id: str, jobs: JobStore, *, children: bool = True) -> Sweep | None:
        """The sweep with its children's counts per state (and the children), or None."""
        raw = cast(dict[bytes, bytes], self.connection.hgetall(self.keys.sweep(sweep_id)))
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        kids = jobs.get_many(self.child_ids(sweep_id))
        return self._to_sweep(data, kids, children)

    def list_ids(
        self, cursor: float | None = None, limit: int = 50
    ) -> tuple[list[str], str | None]:
        """Sweep ids newest first, with the cursor of the next page."""
        high = f"({cursor}" if cursor is not None else "+inf"
        rows = cast(
            list[tuple[bytes, float]],
            self.connection.zrevrangebyscore(
                self.keys.sweeps, high, "-inf", start=0, num=limit + 1, withscores=True
            ),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = repr(rows[-1][1]) if more and rows else None
        return [r[0].decode() for r in rows], nxt

    def delete(self, sweep_id: str) -> None:
        """Forget a sweep (its children are expired separately)."""
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(self.keys.sweep(sweep_id), self.keys.sweep_jobs(sweep_id))
        pipe.zrem(self.keys.sweeps, sweep_id)
        pipe.execute()

    @staticmethod
    def _to_sweep(data: Mapping[str, str], kids: Sequence[Job], children: bool) -> Sweep:
        counts = {s.value: 0 for s in JobState}
        for kid in kids:
            counts[kid.state.value] += 1
        listed: list[SweepChild] = []
        if children:
            for kid in kids:
                listed.append(SweepChild(
                    index=kid.sweep_index or 0, job_id=kid.id, state=kid.state.value,
                    variation=kid.variation or {}, reason=kid.reason,
                    results=kid.results.model_dump() if kid.results else None,
                ))
        fields: dict[str, Any] = {
            "id": data["id"],
            "name": data.get("name", ""),
            "state": sweep_state(counts),
            "size": int(data["size"]),
            "throttle": int(data["throttle"]) if data.get("throttle") else None,
            "counts": counts,
            "created_at": float(data["created_at"]),
            "owner": data.get("owner") or None,
            "cancel_requested": data.get("cancel_requested") == "1",
            "spec": json.loads(data["spec"]),
            "children": listed,
        }
        return Sweep.model_validate(fields)

"""Finished jobs: history pages and retention expiry.

Final transitions add the job to the ``finished`` sorted set (score = finish time), so
a history page is one range read however many jobs are kept (O(log n + page)), and the
retention sweep finds expired jobs without scanning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple, cast

import redis

from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.common.store import scripts
from simfarm.common.store.jobs import JobStore, _decode

log = logging.getLogger(__name__)


class FinishedRecord(NamedTuple):
    """A finished job to import (see :meth:`HistoryStore.import_finished`)."""

    id: str
    spec_json: str
    state: str
    created_at: float
    finished_at: float
    priority: int = 5
    owner: str | None = None
    exit_code: int | None = None
    reason: str | None = None


def encode_cursor(score: float, job_id: str) -> str:
    """A history cursor: the last job's finish time and id (ties are broken by id)."""
    return f"{score!r}:{job_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (score, id) of a cursor; ValueError when malformed."""
    score, _, job_id = cursor.partition(":")
    if not job_id:
        raise ValueError("cursor must be 'score:id'")
    return float(score), job_id


class HistoryStore:
    """Reads finished jobs newest first and expires them."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.connection: redis.Redis = jobs.connection
        self.keys = jobs.keys
        self._expire = scripts.register(self.connection, "expire", self.keys)

    def page(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        state: JobState | None = None,
        limit: int = 50,
    ) -> tuple[list[Job], str | None]:
        """Finished jobs (optionally of one final state) that ended in
        ``[since, until]``, newest first, and the cursor of the next page."""
        low = repr(since) if since is not None else "-inf"
        high = repr(until) if until is not None else "+inf"
        after: tuple[float, str] | None = None
        if cursor:
            after = decode_cursor(cursor)
            high = repr(after[0])
        found: list[Job] = []
        offset = 0
        scanned: tuple[float, str] | None = None
        budget = 20 * limit + 1000  # rows read per request when a state filter skips many
        while len(found) <= limit:
            rows = cast(list[tuple[bytes, float]], self.connection.zrevrangebyscore(
                self.keys.finished, high, low, start=offset, num=200, withscores=True))
            if not rows:
                return found, None
            offset += len(rows)
            ids = [(r.decode(), score) for r, score in rows]
            if after is not None:  # equal scores come in descending id order
                ids = [(i, sc) for i, sc in ids if not (sc == after[0] and i >= after[1])]
            jobs = {j.id: j for j in self.jobs.get_many([i for i, _ in ids])}
            for job_id, score in ids:
                scanned = (score, job_id)
                job = jobs.get(job_id)
                if job is not None and (state is None or job.state is state):
                    found.append(job)
                    if len(found) > limit:
                        break
            if offset >= budget and len(found) <= limit:
                # Stop here; the caller continues from the last row looked at.
                return found, encode_cursor(*scanned) if scanned else None
        found = found[:limit]
        last_score = self.connection.zscore(self.keys.finished, found[-1].id)
        return found, encode_cursor(float(last_score or 0), found[-1].id)

    def import_finished(self, records: Sequence[FinishedRecord]) -> int:
        """Store finished jobs as they are (history migrated from another system, or a
        restore), with the same fields and indexes as jobs that ran here, but no events.
        Pipelined; returns how many were written."""
        if not records:
            return 0
        k = self.keys
        first = int(self.connection.incrby(k.seq, len(records))) - len(records) + 1
        for start in range(0, len(records), 5000):
            pipe = self.connection.pipeline(transaction=False)
            indexes: dict[str, dict[str, float]] = {k.all_jobs: {}, k.finished: {}}
            for n, rec in enumerate(records[start : start + 5000], start=first + start):
                if rec.state not in ("completed", "failed", "cancelled"):
                    raise ValueError(f"job {rec.id} is {rec.state}, not finished")
                rank = (10 - rec.priority) * 1_000_000_000_000 + n
                fields: dict[str, str] = {
                    "id": rec.id, "spec": rec.spec_json, "state": rec.state,
                    "priority": str(rec.priority), "seq": str(n), "rank": str(rank),
                    "created_at": repr(rec.created_at), "updated_at": repr(rec.finished_at),
                    "finished_at": repr(rec.finished_at), "attempt": "1",
                    "owner": rec.owner or "",
                }
                if rec.exit_code is not None:
                    fields["exit_code"] = str(rec.exit_code)
                if rec.reason:
                    fields["reason"] = rec.reason
                pipe.hset(k.job(rec.id), mapping=fields)  # type: ignore[arg-type]
                indexes[k.all_jobs][rec.id] = n
                indexes[k.finished][rec.id] = rec.finished_at
                indexes.setdefault(k.state(rec.state), {})[rec.id] = rank
                if rec.owner:
                    indexes.setdefault(k.owner(rec.owner), {})[rec.id] = n
            for key, members in indexes.items():
                pipe.zadd(key, members)
            pipe.incr(k.rows_version)  # jobs without events: listings change
            pipe.execute()
        log.info("imported %d finished jobs", len(records))
        return len(records)

    def expired_ids(self, before: float, limit: int = 500) -> list[str]:
        """Jobs that finished before ``before`` (oldest first)."""
        rows = self.connection.zrangebyscore(self.keys.finished, "-inf", before, start=0,
                                             num=limit)
        return [r.decode() for r in cast(list[bytes], rows)]

    def take_retention_turn(self, hold_s: float) -> bool:
        """Whether this process runs the retention sweep now: the first caller takes the
        turn for ``hold_s`` seconds and every other gateway's call in that time is
        refused (one round trip)."""
        return bool(self.connection.set(self.keys.expiry_lock, "1", nx=True,
                                        px=max(1, int(hold_s * 1000))))

    def expire(self, job_id: str) -> tuple[str, str | None]:
        """Forget a finished job; returns (status, results blob SHA-256 or None).
        Status ``expired``, ``missing`` or ``active`` (not finished: kept)."""
        result = self._expire(keys=[self.keys.job(job_id), self.keys.job_events(job_id)],
                              args=[job_id])
        status = _decode(result[0]) or ""
        results_json = _decode(result[3]) if len(result) > 3 else None
        sha = None
        if results_json:
            import json

            sha = json.loads(results_json).get("sha256")
        if status == "expired":
            log.info("job %s: expired (retention)", job_id)
        return status, sha

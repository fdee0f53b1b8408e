"""The job store: jobs, their state indexes and their event streams in Redis.

Every state change is one Lua script call, so a transition is checked and applied
atomically: an illegal change raises a typed error and leaves Redis untouched.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict, Unpack, cast

import redis
from redis.commands.core import Script

from simfarm.common.errors import (
    DuplicateJob,
    IllegalTransition,
    JobNotFound,
    LicensesUnavailable,
    StaleAttempt,
)
from simfarm.common.models import Job, JobEvent, JobPage, JobSpec
from simfarm.common.states import JobState, sources_of
from simfarm.common.store import scripts
from simfarm.common.store.leases import (
    ATTEMPT_FIELDS,
    HANDED_BACK,
    Attempt,
    LeaseEnd,
    LeaseGrant,
    cluster_fields,
    lease_of,
    pid_fields,
    to_attempt,
)
from simfarm.common.store.rows import ROW_FIELDS, JobRow, RenderedRows, T
from simfarm.common.store.streams import StreamingStore
from simfarm.common.waiting import ShapeWait, explain, request_shape

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_PAGE = 1000
#: gated pending jobs (dependencies, throttles) are ranked at ``rank + GATED_BAND`` (ranks
#: stay below 1e13 + seq)
GATED_BAND = 100_000_000_000_000
#: the listed fields (rows.ROW_FIELDS): a write of one of them changes listing_version
_LISTED = frozenset(ROW_FIELDS)
RANK_STEP = 1_000_000_000_000  # rank = (10 - priority) * RANK_STEP + seq (lua/create.lua)


def _notify_flag(spec: JobSpec) -> dict[str, str]:
    """The field that has the job's end queued for its notifications (lib.lua)."""
    notify = spec.notify
    return {"notify": "1"} if notify is not None and (notify.webhooks or notify.email) else {}


def new_job_id() -> str:
    """A fresh, URL-safe, unique job id."""
    return uuid.uuid4().hex


def _hash_values(fields: Mapping[str, Any]) -> dict[str, str]:
    """Hash field values as stored: structured values as JSON, the rest as text."""
    return {k: (json.dumps(v) if isinstance(v, dict | list) else str(v))
            for k, v in fields.items() if v is not None}


def _decode(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _newest_id(rows: list[Any]) -> str:
    """The id of the newest entry of ``XREVRANGE ... COUNT 1``, or ``0-0``."""
    return _decode(rows[0][0]) or "0-0" if rows else "0-0"


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class JobTimes(NamedTuple):
    """A job's timestamps, seconds since the epoch (None: not reached yet)."""

    created_at: float | None
    scheduled_at: float | None
    started_at: float | None
    finished_at: float | None


_TIMES = list(JobTimes._fields)


class Move(TypedDict, total=False):
    """What a transition checks and writes besides its target (see
    :meth:`JobStore.transition`)."""

    expect_attempt: int | None
    expect_node: str | None
    sources: Iterable[JobState] | None
    fence: int | None
    new_attempt: bool
    lease: LeaseGrant | LeaseEnd | None
    fields: Mapping[str, Any] | None
    event: Mapping[str, Any] | None
    draw: Mapping[str, int] | None


class JobStore(StreamingStore):
    """Reads and changes jobs in Redis. The only code that knows the Redis keys.

    Methods that write take an optional ``pipeline`` only where batching with other
    writes makes sense; transitions always run as single atomic scripts.
    """

    def _register_scripts(self, connection: redis.Redis) -> None:
        def load(name: str) -> Script:
            return scripts.register(connection, name, self.keys)

        self._create = load("create")
        self._transition = load("transition")
        self._append = load("append")
        self._cancel = load("cancel")
        self._set_priority = load("set_priority")
        self._renew = load("renew_lease")
        self._claim = load("claim")
        self._rows = load("rows")

    # ------------------------------------------------------------------ create / read
    def create(
        self,
        spec: JobSpec,
        *,
        job_id: str | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[Job, bool]:
        """Store a new pending job and nudge the dispatcher, in one round trip. Returns
        ``(job, created)``; ``created`` is False when the idempotency key already produced
        a job, which is then returned unchanged.

        ``extra`` sets more fields of the job atomically with its creation (sweep
        membership, resolved dependencies...); with a ``gate`` code the job starts gated
        (see :class:`~simfarm.common.store.gates.GateStore`)."""
        job_id = job_id or new_job_id()
        keys, args = self._create_call(spec, job_id, idempotency_key, owner, extra)
        result = self._create(keys=keys, args=args)
        status, ident = (_decode(x) for x in result[:2])
        assert ident is not None
        if status == "dup":
            return self.get(ident), False
        if status == "exists":
            raise DuplicateJob(ident)
        log.info("job %s: created (priority %s)", job_id, spec.priority)
        flat = result[3]
        return self._to_job(dict(zip(flat[::2], flat[1::2], strict=True))), True

    def _create_call(
        self,
        spec: JobSpec,
        job_id: str,
        idempotency_key: str | None,
        owner: str | None,
        extra: Mapping[str, Any] | None,
    ) -> tuple[list[str], list[Any]]:
        now = time.time()
        owner = owner or spec.owner or ""
        event = json.dumps({"to": "pending", "priority": spec.priority})
        k = self.keys
        keys = [
            k.seq,
            k.job(job_id),
            k.all_jobs,
            k.state(JobState.PENDING.value),
            k.events,
            k.job_events(job_id),
            # "none" is KEYS[1] repeated: every key stays in the prefix (Redis ACLs)
            k.idempotency(idempotency_key) if idempotency_key else k.seq,
            k.owner(owner) if owner else k.seq,
            k.wakeup,
        ]
        args = [
            job_id,
            # Defaults left out: a queued job's hash then often stays in Redis' compact
            # encoding (values <= 64 bytes); reading it back fills them in again.
            spec.model_dump_json(exclude_defaults=True),
            spec.priority,
            repr(now),
            owner,
            self.events_global,
            self.events_per_job,
            IDEMPOTENCY_TTL_S,
            event,
            json.dumps(_hash_values({**(extra or {}), **_notify_flag(spec)})),
        ]
        return keys, args

    def create_batch(
        self, items: Sequence[tuple[str, JobSpec, Mapping[str, Any]]], owner: str | None = None
    ) -> list[str]:
        """Store many new pending jobs ``(job_id, spec, extra fields)`` in pipelined
        round trips (each creation is atomic, the batch is not). Returns the ids created;
        an id that already exists is skipped."""
        created: list[str] = []
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            pipe = self.connection.pipeline(transaction=False)
            for job_id, spec, extra in chunk:
                keys, args = self._create_call(spec, job_id, None, owner, extra)
                self._create(keys=keys, args=args, client=pipe)
            for (job_id, _, _), result in zip(chunk, pipe.execute(), strict=True):
                if _decode(result[0]) == "ok":
                    created.append(job_id)
        log.info("created %d jobs in a batch", len(created))
        return created

    def cancel_many(self, job_ids: Sequence[str], reason: str = "cancelled by user") -> int:
        """Cancel many jobs in pipelined round trips (running ones get a cancel request;
        finished ones are left alone). Returns how many were cancelled or requested."""
        done = 0
        k = self.keys
        for start in range(0, len(job_ids), 1000):
            pipe = self.connection.pipeline(transaction=False)
            for job_id in job_ids[start : start + 1000]:
                self._cancel(
                    keys=[k.job(job_id), k.events, k.job_events(job_id)],
                    args=[job_id, repr(time.time()), self.events_global,
                          self.events_per_job, reason],
                    client=pipe,
                )
            done += sum(1 for r in pipe.execute() if _decode(r[0]) in ("cancelled", "requested"))
        return done

    def get(self, job_id: str) -> Job:
        """The job with this id, or :class:`JobNotFound`."""
        raw = self.connection.hgetall(self.keys.job(job_id))
        if not raw:
            raise JobNotFound(job_id)
        return self._explain_waiting([self._to_job(cast(dict[bytes, bytes], raw))])[0]

    def get_many(self, job_ids: Sequence[str], *, waits: bool = True) -> list[Job]:
        """Jobs for these ids, in order, skipping ids that no longer exist. ``waits=False``
        leaves the dispatcher's note on why a pending job waits out of ``reason``."""
        pipe = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.keys.job(job_id))
        jobs = [self._to_job(raw) for raw in pipe.execute() if raw]
        return self._explain_waiting(jobs) if waits else jobs

    def _explain_waiting(self, jobs: list[Job]) -> list[Job]:
        """Put the dispatcher's note on each startable pending job's ``reason`` (one more
        round trip when there are such jobs), unless the job's own reason is newer."""
        waiting = {j.id: request_shape(j.spec.resources, j.spec.timeout_s,
                                       j.spec.account or "", j.owner or "")
                   for j in jobs if j.state is JobState.PENDING and not j.gate}
        if not waiting:
            return jobs
        names = list(dict.fromkeys(waiting.values()))
        raw = cast(list[bytes | None], self.connection.hmget(self.keys.dispatch_waits, names))
        notes = {n: ShapeWait.from_stored(v) for n, v in zip(names, raw, strict=True) if v}
        now = time.time()
        for job in jobs:
            found = notes.get(waiting.get(job.id, ""))
            if found is not None and (job.reason is None
                                      or job.updated_at.timestamp() <= found[0]):
                job.reason = explain(found[1], job.id, now).message
        return jobs

    def states_of(self, job_ids: Sequence[str]) -> list[str | None]:
        """Current state of each job (None for unknown ids), in one round trip."""
        pipe = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "state")
        return [_decode(s) for s in pipe.execute()]

    def exists(self, job_id: str) -> bool:
        """Whether a job with this id exists."""
        return bool(self.connection.exists(self.keys.job(job_id)))

    # Small typed reads of a few hash fields: cheap checks for worker loops, the reaper
    # and the gateway's access checks (no spec is parsed).
    def attempt(self, job_id: str) -> Attempt:
        """The job's current attempt with its lease (one round trip), or
        :class:`JobNotFound`."""
        raw = self.connection.hmget(self.keys.job(job_id), ATTEMPT_FIELDS)
        found = to_attempt(job_id, cast(list[bytes | None], raw))
        if found is None:
            raise JobNotFound(job_id)
        return found

    def attempts(self, job_ids: Sequence[str]) -> list[Attempt]:
        """The current attempts with their leases of many jobs, in order, in one round
        trip; ids that no longer exist are left out."""
        pipe = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(self.keys.job(job_id), ATTEMPT_FIELDS)
        found = (to_attempt(job_id, raw)
                 for job_id, raw in zip(job_ids, pipe.execute(), strict=True))
        return [a for a in found if a is not None]

    def state_of(self, job_id: str) -> JobState | None:
        """The job's state, or None when there is no such job."""
        raw = _decode(cast(bytes | None, self.connection.hget(self.keys.job(job_id), "state")))
        return JobState(raw) if raw else None

    def owner_of(self, job_id: str) -> str | None:
        """The job's owner (None for a job without one), or :class:`JobNotFound`."""
        state, owner = cast(list[bytes | None],
                            self.connection.hmget(self.keys.job(job_id), ["state", "owner"]))
        if state is None:
            raise JobNotFound(job_id)
        return _decode(owner) or None

    def held_by_admin(self, job_id: str) -> bool:
        """Whether the job is held (state ``held``) by an admin's hold."""
        state, flag = cast(list[bytes | None], self.connection.hmget(
            self.keys.job(job_id), ["state", "held_admin"]))
        return state == b"held" and flag == b"1"

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job was asked to stop: a cancel was requested, or it is cancelled
        already (False for a job that no longer exists)."""
        state, flag = cast(list[bytes | None], self.connection.hmget(
            self.keys.job(job_id), ["state", "cancel_requested"]))
        return flag == b"1" or state == b"cancelled"

    def times(self, job_id: str) -> JobTimes:
        """The job's timestamps (all None for a job that no longer exists)."""
        raw = cast(list[bytes | None], self.connection.hmget(self.keys.job(job_id), _TIMES))
        return JobTimes(*(float(v) if v else None for v in raw))

    def convergence(self, job_id: str) -> dict[str, Any] | None:
        """The solver convergence series an HFSS run stored on the job (kept out of
        :class:`Job`: it can hold thousands of points), or None."""
        raw = self.connection.hget(self.keys.job(job_id), "convergence")
        return cast(dict[str, Any], json.loads(cast(bytes, raw))) if raw else None

    def touchstone(self, job_id: str) -> list[dict[str, Any]]:
        """The Touchstone result summaries the worker stored with the job at its end
        (kept out of :class:`Job`: up to a few thousand points each), or []."""
        raw = self.connection.hget(self.keys.job(job_id), "touchstone")
        return cast(list[dict[str, Any]], json.loads(cast(bytes, raw))) if raw else []

    def touchstone_files(self, job_id: str) -> list[str]:
        """Just the names of those files (cheap: for pages that decide what to draw)."""
        raw = self.connection.hget(self.keys.job(job_id), "touchstone_files")
        return cast(list[str], json.loads(cast(bytes, raw))) if raw else []

    @staticmethod
    def _to_job(raw: Mapping[bytes, bytes]) -> Job:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        fields: dict[str, Any] = {
            "id": data["id"],
            "spec": JobSpec.model_validate_json(data["spec"]),
            "state": data["state"],
            "priority": int(data["priority"]),
            "created_at": float(data["created_at"]),
            "updated_at": float(data["updated_at"]),
            "attempt": int(data.get("attempt", "0")),
            "cancel_requested": data.get("cancel_requested") == "1",
            "owner": data.get("owner") or None,
        }
        for name in ("scheduled_at", "started_at", "finished_at"):
            if data.get(name):
                fields[name] = float(data[name])
        for name in ("node", "error", "reason", "native_id", "gate", "held_by", "sweep_id",
                     "resubmit_of", "resubmitted_as"):
            if data.get(name):
                fields[name] = data[name]
        if data.get("sweep_index"):
            fields["sweep_index"] = int(data["sweep_index"])
        for name in ("dependencies", "variation", "results", "licenses_held", "usage"):
            if data.get(name):
                fields[name] = json.loads(data[name])
        if data.get("exit_code"):
            fields["exit_code"] = int(data["exit_code"])
        if data.get("progress"):
            fields["progress"] = json.loads(data["progress"])
        if data.get("artifacts"):
            fields["artifacts"] = json.loads(data["artifacts"])
        if data.get("cluster"):
            fields["native_scheduler"] = data["cluster"]
        if data.get("cluster_name"):
            fields["native_cluster"] = data["cluster_name"]
        if data.get("losses"):
            fields["losses"] = int(data["losses"])
        lease = lease_of(data)
        if lease is not None:
            fields["lease"] = lease
        return Job.model_validate(fields)

    # ------------------------------------------------------------------ listing
    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        owner: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """One page of jobs. With ``state``: queue order (priority, then submit order).
        Without: newest first. ``cursor`` is the ``next_cursor`` of the previous page.
        Cost is O(log n + page) whatever the number of jobs."""
        limit = max(1, min(limit, MAX_PAGE))
        if state is not None and owner is not None:
            return self._list_filtered(state, owner, cursor, limit)
        if state is not None:
            key = self.keys.state(state.value)
            low = f"({cursor}" if cursor else "-inf"
            rows = self.connection.zrangebyscore(
                key, low, "+inf", start=0, num=limit + 1, withscores=True
            )
        else:
            key = self.keys.owner(owner) if owner else self.keys.all_jobs
            high = f"({cursor}" if cursor else "+inf"
            rows = self.connection.zrevrangebyscore(
                key, high, "-inf", start=0, num=limit + 1, withscores=True
            )
        return self._page(cast(list[tuple[bytes, float]], rows), limit)

    def _list_filtered(
        self, state: JobState, owner: str, cursor: str | None, limit: int
    ) -> JobPage:
        # Walk the owner's index newest-first and keep the jobs in the wanted state;
        # bounded by a scan budget so one request never walks the whole index.
        budget = 20 * limit
        key = self.keys.owner(owner)
        high = f"({cursor}" if cursor else "+inf"
        found: list[Job] = []
        last_score: float | None = None
        while budget > 0 and len(found) <= limit:
            rows = cast(
                list[tuple[bytes, float]],
                self.connection.zrevrangebyscore(
                    key, high, "-inf", start=0, num=200, withscores=True
                ),
            )
            if not rows:
                last_score = None
                break
            budget -= len(rows)
            for job in self.get_many([r[0].decode() for r in rows]):
                if job.state == state and len(found) <= limit:
                    found.append(job)
            last_score = rows[-1][1]
            high = f"({int(last_score)}"
        if len(found) > limit:
            found = found[:limit]
            return JobPage(jobs=found, next_cursor=str(self._seq_of(found[-1].id)))
        return JobPage(jobs=found, next_cursor=None if last_score is None else str(int(last_score)))

    def newest_rows(self, *, owner: str | None = None, kind: str | None = None,
                    limit: int = MAX_PAGE) -> list[JobRow]:
        """Up to ``limit`` jobs (of ``owner``; of ``kind``) as :class:`JobRow`, newest
        first: no job model is built. See :meth:`newest_rendered`."""
        return self.newest_rendered(RenderedRows(lambda row: row, size=limit + 1),
                                    owner=owner, kind=kind, limit=limit)

    def newest_rendered(self, rendered: RenderedRows[T], *, owner: str | None = None,
                        kind: str | None = None, limit: int = MAX_PAGE) -> list[T]:
        """Up to ``limit`` jobs (of ``owner``; of ``kind``), newest first, each as
        ``rendered`` renders its row. One script call (``lua/rows.lua``) per ``limit`` jobs
        looked at (more than one only while jobs of another kind are passed over), and
        one more round trip for the specs of the jobs ``rendered`` has not seen as they
        are now."""
        key = self.keys.owner(owner) if owner else self.keys.all_jobs
        found: list[T] = []
        high = "+inf"
        width = 1 + len(ROW_FIELDS)
        while len(found) < limit:
            flat = self._rows(keys=[key], args=[high, limit, *ROW_FIELDS])
            raws = [tuple(flat[at : at + width]) for at in range(1, len(flat), width)]
            rows = [rendered.known(raw) for raw in raws]
            new = [raw for raw, row in zip(raws, rows, strict=True) if row is None]
            if new:
                pipe = self.connection.pipeline(transaction=False)
                for raw in new:
                    pipe.hget(self.keys.job(cast(bytes, raw[0]).decode()), "spec")
                specs = dict(zip(new, pipe.execute(), strict=True))
                rows = [row or rendered.add(raw, specs[raw])
                        for raw, row in zip(raws, rows, strict=True)]
            found.extend(row[1] for row in rows
                         if row is not None and (kind is None or row[0] == kind))
            if len(raws) < limit:
                break
            high = f"({int(float(flat[0]))}"
        return found[:limit]

    def _seq_of(self, job_id: str) -> int:
        return int(cast(bytes, self.connection.hget(self.keys.job(job_id), "seq")))

    def _page(self, rows: list[tuple[bytes, float]], limit: int) -> JobPage:
        more = len(rows) > limit
        rows = rows[:limit]
        jobs = self.get_many([r[0].decode() for r in rows])
        cursor = str(int(rows[-1][1])) if more and rows else None
        return JobPage(jobs=jobs, next_cursor=cursor)

    def count(self, state: JobState) -> int:
        """Number of jobs in a state (O(1))."""
        return int(self.connection.zcard(self.keys.state(state.value)))

    def counts(self) -> dict[str, int]:
        """Number of jobs per state."""
        pipe = self.connection.pipeline(transaction=False)
        for s in JobState:
            pipe.zcard(self.keys.state(s.value))
        return {s.value: int(n) for s, n in zip(JobState, pipe.execute(), strict=True)}

    def queued(self, user: str | None, account: str | None) -> tuple[int, int]:
        """How many jobs of ``user`` and of ``account`` have not started yet (pending or
        held): ``(user's, account's)``, one round trip (counted by the Lua that changes
        states, ``P queued``)."""
        raw = cast(list[bytes | None], self.connection.hmget(
            self.keys.queued, [f"user/{user or ''}", f"account/{account or ''}"]))
        return int(raw[0] or 0) if user else 0, int(raw[1] or 0) if account else 0

    def pending_by_priority(self, gated: bool = False) -> dict[int, int]:
        """Number of pending jobs at each priority 0-10 that the dispatcher may place
        (or, with ``gated``, that wait at a gate). 11 O(log n) counts."""
        pipe = self.connection.pipeline(transaction=False)
        key = self.keys.state(JobState.PENDING.value)
        band = GATED_BAND if gated else 0
        for priority in range(11):
            low = band + (10 - priority) * RANK_STEP
            pipe.zcount(key, low, f"({low + RANK_STEP}")
        return {p: int(n) for p, n in zip(range(11), pipe.execute(), strict=True)}

    def pending_ids(self, limit: int = 200) -> list[str]:
        """Ids of pending jobs that may start, in dispatch order (priority, then submit
        order). Gated jobs (waiting for dependencies or a sweep throttle) are left out:
        they are ranked after :data:`GATED_BAND` until their gate opens."""
        ids = self.connection.zrangebyscore(
            self.keys.state(JobState.PENDING.value), "-inf", f"({GATED_BAND}", start=0, num=limit
        )
        return [i.decode() for i in cast(list[bytes], ids)]

    def pending_entries(self, limit: int = 200) -> list[tuple[str, int, int]]:
        """``(id, priority, submit sequence)`` of the pending jobs that may start, in
        dispatch order (read from the queue's scores: no job hash is loaded)."""
        rows = self.connection.zrangebyscore(
            self.keys.state(JobState.PENDING.value), "-inf", f"({GATED_BAND}",
            start=0, num=limit, withscores=True,
        )
        out = []
        for raw_id, score in cast(list[tuple[bytes, float]], rows):
            rank = int(score)
            out.append((raw_id.decode(), 10 - rank // RANK_STEP, rank % RANK_STEP))
        return out

    def gated_ids(self, limit: int = 10_000) -> list[str]:
        """Ids of gated pending jobs, in queue order."""
        ids = self.connection.zrangebyscore(
            self.keys.state(JobState.PENDING.value), GATED_BAND, "+inf", start=0, num=limit
        )
        return [i.decode() for i in cast(list[bytes], ids)]

    def ids_in_state(self, state: JobState, limit: int = 10_000) -> list[str]:
        """Ids of jobs in a state (bounded)."""
        ids = self.connection.zrange(self.keys.state(state.value), 0, limit - 1)
        return [i.decode() for i in cast(list[bytes], ids)]

    # ------------------------------------------------------------------ transitions
    def transition(
        self,
        job_id: str,
        target: JobState,
        *,
        nudge: bool = False,
        push: tuple[str, str] | None = None,
        **move: Unpack[Move],
    ) -> str:
        """Move a job to ``target`` atomically; returns the event id. ``nudge`` wakes the
        dispatcher in the same call (a job that ended freed room); ``push`` is ``(Celery
        queue, message)``, a task message put on that queue in the same atomic step.

        ``fields`` are set on the job (None deletes one); ``lease`` hands the attempt to
        a worker (:class:`~.leases.LeaseGrant`) or ends its lease
        (:class:`~.leases.LeaseEnd`); ``new_attempt`` starts the next attempt; ``event``
        is added to the state event's data.

        ``draw`` (with ``target`` scheduled): licences of the farm's pools the job takes
        in the same step (:class:`LicensesUnavailable`, nothing changed, when a pool has
        too few free). A job whose attempt ends (any target but scheduled or running)
        gives back what it drew, in the same step.

        The job must be in a state from which :data:`~simfarm.common.states.TRANSITIONS`
        allows ``target``; ``sources`` can only narrow that (a source it names that the
        state machine does not allow is refused like any other). ``fence`` is the
        dispatcher leader's token (:class:`~.leader.LeaderLock`): refused once another
        leader holds the lock.

        Raises :class:`JobNotFound`, :class:`IllegalTransition` (nothing changed) or
        :class:`StaleAttempt` when ``expect_attempt``/``expect_node``/``fence`` do not hold.
        """
        keys, args = self._transition_call(job_id, target, move)
        args += ["0", "1" if nudge else "0", push[1] if push else ""]
        if push:
            keys.append(self.keys.celery_queue(push[0]))
        result = self._checked(job_id, target, move.get("expect_attempt"),
                               self._transition(keys=keys, args=args))
        return _decode(result[2]) or ""

    def start_attempt(self, job_id: str, attempt: int, lease: LeaseGrant) -> Job:
        """Move the job's attempt ``scheduled -> running`` on ``lease.node`` with this
        lease (refused, as :meth:`transition` refuses, unless both attempt and node are
        still the job's) and return the job as it is then, in one round trip."""
        keys, args = self._transition_call(job_id, JobState.RUNNING, {
            "expect_attempt": attempt, "expect_node": lease.node, "lease": lease,
            "sources": [JobState.SCHEDULED]})
        args += ["1", "0", ""]
        result = self._checked(job_id, JobState.RUNNING, attempt,
                               self._transition(keys=keys, args=args))
        flat = result[3]
        return self._to_job(dict(zip(flat[::2], flat[1::2], strict=True)))

    def _checked(self, job_id: str, target: JobState, expect_attempt: int | None,
                 result: Any) -> list[Any]:
        """The transition script's answer, or the error it stands for."""
        status, info = (_decode(x) or "" for x in result[:2])
        if status == "missing":
            raise JobNotFound(job_id)
        if status == "licenses":
            raise LicensesUnavailable(job_id, _decode(result[2]) or "", int(result[3]))
        if status == "illegal":
            raise IllegalTransition(job_id, info, target.value)
        if status in ("stale", "fenced"):
            raise StaleAttempt(job_id, expect_attempt if expect_attempt is not None else -1)
        log.info("job %s: %s -> %s", job_id, info, target.value)
        return cast(list[Any], result)

    def _transition_call(self, job_id: str, target: JobState,
                         move: Move) -> tuple[list[str], list[Any]]:
        """The keys and arguments of one call of the transition script."""
        allowed = sources_of(target)
        sources = move.get("sources")
        if sources is not None:
            narrowed = set(sources)
            allowed = [s for s in allowed if s in narrowed]
        now = time.time()
        lease = move.get("lease")
        # Structured fields (progress, artifacts) are stored as JSON, as update_fields does.
        values = {k: (json.dumps(v) if isinstance(v, dict | list) else v)
                  for k, v in {**(move.get("fields") or {}),
                               **(lease.fields() if lease else {})}.items()}
        timestamp_field = {
            JobState.SCHEDULED: "scheduled_at",
            JobState.RUNNING: "started_at",
            JobState.COMPLETED: "finished_at",
            JobState.FAILED: "finished_at",
            JobState.CANCELLED: "finished_at",
        }.get(target)
        if timestamp_field:
            values.setdefault(timestamp_field, repr(now))
        k = self.keys
        expect_attempt, fence, draw = (move.get("expect_attempt"), move.get("fence"),
                                       move.get("draw"))
        return [k.job(job_id), k.events, k.job_events(job_id)], [
            job_id,
            target.value,
            json.dumps([s.value for s in allowed]),
            "" if expect_attempt is None else str(expect_attempt),
            move.get("expect_node") or "",
            json.dumps(values),
            repr(now),
            self.events_global,
            self.events_per_job,
            "1" if move.get("new_attempt") else "0",
            json.dumps(dict(move.get("event") or {})),
            "" if fence is None else str(fence),
            json.dumps(dict(draw)) if draw else "",
        ]

    def transition_many(
        self,
        job_ids: Sequence[str],
        target: JobState,
        *,
        sources: Iterable[JobState],
        fields: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Move many jobs to ``target`` in pipelined round trips (each move atomic and
        checked as :meth:`transition` checks it; the batch is not). Returns the ids that
        moved; the others were in a state it does not go from, or are gone."""
        narrowed = list(sources)
        moved: list[str] = []
        for start in range(0, len(job_ids), 1000):
            chunk = job_ids[start : start + 1000]
            pipe = self.connection.pipeline(transaction=False)
            for job_id in chunk:
                keys, args = self._transition_call(
                    job_id, target, {"fields": fields, "event": event, "sources": narrowed})
                self._transition(keys=keys, args=args, client=pipe)
            for job_id, result in zip(chunk, pipe.execute(), strict=True):
                if _decode(result[0]) == "ok":
                    moved.append(job_id)
        if moved:
            log.info("%d jobs -> %s (%s...)", len(moved), target.value, moved[0])
        return moved

    def request_cancel(self, job_id: str, reason: str = "cancelled by user") -> str:
        """Cancel a job. Returns ``"cancelled"`` when the job was pending/scheduled and is
        now cancelled, ``"requested"`` when it is running (or scheduled with a cluster
        job: queued there, or taken over) and its worker will stop it.
        Raises :class:`IllegalTransition` for a finished job."""
        k = self.keys
        result = self._cancel(
            keys=[k.job(job_id), k.events, k.job_events(job_id)],
            args=[
                job_id,
                repr(time.time()),
                self.events_global,
                self.events_per_job,
                reason,
            ],
        )
        status, state = (_decode(x) or "" for x in result[:2])
        if status == "missing":
            raise JobNotFound(job_id)
        if status == "final":
            raise IllegalTransition(job_id, state, JobState.CANCELLED.value)
        log.info("job %s: cancel %s (was %s)", job_id, status, state)
        return status

    def set_priority(self, job_id: str, priority: int) -> Job:
        """Change the priority of a pending (or held) job."""
        k = self.keys
        result = self._set_priority(
            keys=[k.job(job_id), k.events, k.job_events(job_id)],
            args=[
                job_id,
                priority,
                repr(time.time()),
                self.events_global,
                self.events_per_job,
            ],
        )
        status, state = (_decode(x) or "" for x in result[:2])
        if status == "missing":
            raise JobNotFound(job_id)
        if status == "illegal":
            raise IllegalTransition(job_id, state,
                                    "re-prioritised (only pending or held jobs can be)")
        log.info("job %s: priority set to %s", job_id, priority)
        return self.get(job_id)

    def update_fields(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Set informational fields (progress, artifacts, results...) on a job. Never
        use this for state: states change only through :meth:`transition`; the lease
        and the attempt's cluster job through the typed writes (:meth:`set_pid`,
        :meth:`record_cluster_job`, ``lease=``)."""
        if "state" in fields:
            raise ValueError("state changes must go through transition()")
        values = {
            k: (json.dumps(v) if isinstance(v, dict | list) else str(v)) for k, v in fields.items()
        }
        if _LISTED.isdisjoint(values):
            self.connection.hset(self.keys.job(job_id), mapping=values)  # type: ignore[arg-type]
            return
        pipe = self.connection.pipeline(transaction=False)  # the version after the write
        pipe.hset(self.keys.job(job_id), mapping=values)  # type: ignore[arg-type]
        pipe.incr(self.keys.rows_version)
        pipe.execute()

    def set_pid(self, job_id: str, pid: int) -> None:
        """Record the process (group leader) that runs the job's attempt on its node."""
        self.update_fields(job_id, pid_fields(pid))

    def record_cluster_job(self, job_id: str, cluster: str, native_id: str,
                           reason: str, name: str | None = None) -> None:
        """Record the cluster job (scheduler kind, its id there, the cluster's identity)
        that runs the job's attempt, which a later attempt adopts, with the job's reason,
        in one command."""
        fields = {k: v for k, v in cluster_fields(cluster, native_id, name).items()
                  if v is not None}
        self.update_fields(job_id, {**fields, "reason": reason})

    def hand_back(self, job_id: str, attempt: int) -> bool:
        """The worker stops following the attempt's cluster job (it is stopping, or lost
        Redis past its lease): the job keeps its state and its cluster job, its lease
        ends (:data:`~.leases.HANDED_BACK`) so the dispatcher hands it to another worker
        of the cluster at once. False if the attempt is no longer current."""
        return self.renew_lease(job_id, attempt, HANDED_BACK)

    def claim_scheduled(self, job_id: str, attempt: int, node: str, lease_until: float) -> bool:
        """Take a scheduled attempt for one task without moving it to running; False if
        the attempt is not current, not on ``node`` or already taken."""
        return bool(self._claim(keys=[self.keys.job(job_id)],
                                args=[attempt, node, repr(lease_until)]))

    def renew_lease(self, job_id: str, attempt: int, until: float) -> bool:
        """Extend a running attempt's lease; False if the attempt is no longer current
        (the job was requeued or ended elsewhere) and the caller must stop."""
        return bool(self._renew(keys=[self.keys.job(job_id)], args=[attempt, repr(until)]))

    # ------------------------------------------------------------------ events
    def append_events(
        self, job_id: str, events: Sequence[tuple[str, Mapping[str, Any]]],
        pid: int | None = None,
    ) -> list[str]:
        """Append ``(type, data)`` events (log lines, progress...) in one round trip;
        ``pid`` (as :meth:`set_pid`) is recorded just before, in the same round trip."""
        if not events:
            return []
        args: list[Any] = [job_id, self.events_global, self.events_per_job]
        for kind, data in events:
            args.extend([kind, json.dumps(dict(data))])
        k = self.keys
        keys = [k.events, k.job_events(job_id), k.job(job_id)]
        if pid is None:
            ids = self._append(keys=keys, args=args)
        else:
            pipe = self.connection.pipeline(transaction=False)
            values = {n: str(v) for n, v in pid_fields(pid).items()}
            pipe.hset(k.job(job_id), mapping=values)  # type: ignore[arg-type]
            self._append(keys=keys, args=args, client=pipe)
            ids = pipe.execute()[1]
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def events(self, job_id: str, since: str | None = None, limit: int = 1000) -> list[JobEvent]:
        """The job's events after event id ``since`` (exclusive), oldest first."""
        low = f"({since}" if since else "-"
        pipe = self.connection.pipeline(transaction=False)
        pipe.xrange(
            self.keys.job_events(job_id), min=low, max="+", count=max(1, min(limit, 10_000))
        )
        pipe.hget(self.keys.job(job_id), "ev0")
        rows, first = pipe.execute()
        if first is not None:  # a job that never changed: its only event is in its hash
            eid, _, data = _decode(first).partition(" ")  # type: ignore[union-attr]
            if since is None or _id_key(eid) > _id_key(since):
                rows = [(eid, {b"job": job_id.encode(), b"type": b"state",
                               b"data": data.encode()})]
        return [self._to_event(eid, fields) for eid, fields in cast(list[Any], rows)]

    def wait_events(
        self, job_id: str, since: str, timeout_s: float, limit: int = 1000
    ) -> list[JobEvent]:
        """Block up to ``timeout_s`` for the job's events after ``since``."""
        result = self.connection.xread(
            {self.keys.job_events(job_id): since}, count=limit, block=max(1, int(timeout_s * 1000))
        )
        out: list[JobEvent] = []
        for _stream, rows in cast(list[Any], result or []):
            out.extend(self._to_event(eid, fields) for eid, fields in rows)
        return out

    def global_events(
        self, since: str = "$", block_ms: int | None = None, count: int = 1000
    ) -> list[JobEvent]:
        """Events of every job after ``since`` (exclusive), optionally blocking."""
        result = self.connection.xread({self.keys.events: since}, count=count, block=block_ms)
        out: list[JobEvent] = []
        for _stream, rows in cast(list[Any], result or []):
            out.extend(self._to_event(eid, fields) for eid, fields in rows)
        return out

    def listing_version(self) -> str:
        """A value that changes whenever a listing of jobs' rows (:meth:`newest_rows`)
        may change: a job created, changed or expired. Every write of a listed field
        appends an event or bumps ``rows:version`` after it, so a listing read after
        this value was taken is current for as long as the value stays the same."""
        pipe = self.connection.pipeline(transaction=False)
        pipe.xrevrange(self.keys.events, count=1)
        pipe.get(self.keys.rows_version)
        newest, bumped = pipe.execute()
        return f"{_newest_id(newest)}/{_decode(bumped) or 0}"

    def last_event_id(self) -> str:
        """Id of the newest event of any job, or ``0-0``."""
        return _newest_id(cast(list[Any], self.connection.xrevrange(self.keys.events, count=1)))

    def trimmed_after(self, since: str, job_id: str | None = None) -> str | None:
        """The oldest event id still kept when events after ``since`` may have been trimmed
        from the capped stream (the job's, or the global one); None when nothing was lost."""
        key = self.keys.job_events(job_id) if job_id else self.keys.events
        try:
            info: dict[str, Any] = self.connection.xinfo_stream(key)
        except redis.ResponseError:  # no such stream: nothing was ever there
            return None
        first = info.get("first-entry")
        first_id = _decode(first[0]) if first else _decode(info.get("last-generated-id"))
        if not first_id:
            return None
        added = info.get("entries-added")
        if added is not None and int(added) <= int(info["length"]):
            return None  # Redis >= 7 says nothing was ever removed
        if added is None and since in ("0", "0-0"):
            return None  # Redis < 7 cannot tell; do not cry wolf for "everything"
        return first_id if _id_key(first_id) > _id_key(since) else None

    @staticmethod
    def _to_event(eid: bytes | str, fields: Mapping[bytes, bytes]) -> JobEvent:
        event_id = eid.decode() if isinstance(eid, bytes) else eid
        ms = int(event_id.split("-", 1)[0])
        return JobEvent(
            id=event_id,
            job_id=fields[b"job"].decode(),
            type=fields[b"type"].decode(),
            ts=ms / 1000.0,
            data=json.loads(fields[b"data"]),
        )

    # ------------------------------------------------------------------ dispatch nudges
    def nudge_dispatcher(self) -> None:
        """Wake the dispatcher (after a submit, a finished job, a new node...).

        Best effort: a nudge only saves the dispatcher part of its polling interval, so
        a Redis error here is logged, never raised (the change it follows is already
        stored, and its caller must not report it as failed)."""
        pipe = self.connection.pipeline(transaction=False)
        pipe.lpush(self.keys.wakeup, "1")
        pipe.ltrim(self.keys.wakeup, 0, 0)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("dispatcher nudge not sent: %s", exc)

    def wait_for_nudge(self, timeout_s: float) -> bool:
        """Block until nudged or ``timeout_s`` passes; True if nudged."""
        return self.connection.blpop([self.keys.wakeup], timeout=timeout_s) is not None

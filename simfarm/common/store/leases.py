"""The lease of a job's current attempt as the store keeps it in the job's hash
(``node``, ``lease_until``, ``boot``, ``claimed``, ``pid``; the attempt's cluster job in
``native_id``, ``cluster`` and ``cluster_name``; attempts lost with their worker in
``losses``): read as a typed :class:`Attempt`, written through the typed values of this
module, so no code outside the store names those fields. Handing the attempt to a worker is a
:class:`LeaseGrant`, its end a :class:`LeaseEnd`, both passed to
:meth:`~simfarm.common.store.jobs.JobStore.transition`; ``claim.lua`` and
``renew_lease.lua`` keep the lease of a running attempt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from simfarm.common.models import Lease
from simfarm.common.states import JobState


class Attempt(NamedTuple):
    """A job's current attempt and its lease, read without the rest of the job."""

    job_id: str
    state: JobState
    number: int
    node: str | None
    native_id: str | None
    lease: Lease


#: the hash fields :func:`to_attempt` reads, in its order
ATTEMPT_FIELDS = ["state", "attempt", "node", "native_id", "lease_until", "boot", "claimed",
                  "pid"]


def _decode(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _lease(until: str | None, boot: str | None, claimed: bool, pid: str | None) -> Lease:
    # Built without validation: the reaper reads the leases of every active job each round.
    return Lease.model_construct(
        until=datetime.fromtimestamp(float(until), UTC) if until else None,
        boot=boot or None, claimed=claimed, pid=int(pid) if pid else None)


def to_attempt(job_id: str, raw: Sequence[bytes | None]) -> Attempt | None:
    """The attempt of :data:`ATTEMPT_FIELDS` as read (None: no such job)."""
    state, attempt, node, native_id, until, boot, claimed, pid = (_decode(v) for v in raw)
    if state is None:
        return None
    return Attempt(job_id, JobState(state), int(attempt or 0), node or None, native_id or None,
                   _lease(until, boot, claimed is not None and claimed == attempt, pid))


def lease_of(data: Mapping[str, str]) -> Lease | None:
    """The lease in a job's decoded hash; None when it has none (a lease is current only
    while it has an end)."""
    if not data.get("lease_until"):
        return None
    return _lease(data["lease_until"], data.get("boot"),
                  data.get("claimed") == data.get("attempt", "0"), data.get("pid"))


@dataclass(frozen=True)
class LeaseGrant:
    """The attempt is node ``node``'s until ``until`` (seconds since the epoch), in its
    worker process ``boot`` (None: not known); that worker renews it."""

    node: str
    until: float
    boot: str | None = None

    def fields(self) -> dict[str, Any]:
        """The hash fields it sets (None deletes)."""
        return {"node": self.node, "lease_until": repr(self.until), "boot": self.boot}


@dataclass(frozen=True)
class LeaseEnd:
    """The attempt's lease ends: its end, worker process and pid go. ``requeued``: the
    job goes back to the queue, off its node; ``losses``: how many of its attempts were
    lost with their worker, now (the reaper's verdict: usage accounting records the
    attempt as ``lost``); ``timed_out``: the run was stopped at its time limit
    (recorded as ``timeout``)."""

    requeued: bool = False
    losses: int | None = None
    timed_out: bool = False

    def fields(self) -> dict[str, Any]:
        """The hash fields it sets (None deletes)."""
        out: dict[str, Any] = {"lease_until": None, "boot": None, "pid": None}
        if self.requeued:
            out["node"] = None
        if self.losses is not None:
            out["losses"] = self.losses
        if self.timed_out:
            out["timed_out"] = 1
        return out


def pid_fields(pid: int) -> dict[str, Any]:
    """The hash field of the run's process (group leader) on the node."""
    return {"pid": pid}


def cluster_fields(cluster: str, native_id: str, name: str | None) -> dict[str, Any]:
    """The hash fields of the cluster job that runs the attempt (a later attempt adopts
    it): the scheduler's kind, the job's id there and the cluster's identity
    (``<kind>:<name>``: which workers can follow it)."""
    return {"cluster": cluster, "native_id": native_id, "cluster_name": name}


#: the lease end of an attempt its worker handed back (a cluster job it stopped
#: following): the dispatcher hands the cluster job to another worker at once
HANDED_BACK = 0.0

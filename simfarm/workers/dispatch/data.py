"""Plain data the placement policy works on: nodes, pending and running jobs, decisions.

These are deliberately independent of Redis and of the API models so that the same policy
code runs inside the real dispatcher and inside the scheduling simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simfarm.common.capacity import Capacity, Demand
from simfarm.common.waiting import PendingReason

__all__ = ["Key", "NodeView", "PendingJob", "PendingReason", "Placement", "Reservation",
           "RunningJob", "order_key"]

#: An ordering key (see :func:`order_key`); smaller sorts first.
Key = tuple[float, int]


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as the policy sees it: total capacity and whether it takes new jobs now."""

    capacity: Capacity
    held_reason: str | None = None

    @property
    def name(self) -> str:
        """The node's stable name."""
        return self.capacity.name


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting for a node."""

    id: str
    priority: int
    seq: int
    demand: Demand = field(default_factory=Demand)
    time_limit_s: float | None = None
    submitted_at: float = 0.0
    #: who pays: the account and the user (fair share, limits); "" for none
    account: str = ""
    user: str = ""


def order_key(
    job: PendingJob, aging_s_per_priority: float | None, size_credit_s_per_core: float = 0.0
) -> Key:
    """Where ``job`` stands in the dispatch order.

    Without aging: higher priority first, then earlier submission. With aging, every
    priority level is worth ``aging_s_per_priority`` seconds of waiting and every
    requested core ``size_credit_s_per_core`` seconds: a job ranks as if submitted that
    much earlier, so a job that has waited long enough passes newer jobs of higher
    priority, and a large job (hard to place: it needs a whole node to drain) is favoured
    over a small one of the same priority. The rank does not change with time, only the
    jobs it is compared with do. Fair share moves all the jobs of one user in one
    account earlier together (:mod:`.shares`), on top of this key.
    """
    if aging_s_per_priority is None:
        return (-float(job.priority), job.seq)
    credit = job.priority * aging_s_per_priority + job.demand.cores * size_credit_s_per_core
    return (job.submitted_at - credit, job.seq)


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job that holds resources on a node (scheduled or running)."""

    id: str
    node: str
    demand: Demand
    started_at: float
    time_limit_s: float | None = None
    account: str = ""
    user: str = ""


@dataclass(frozen=True, slots=True)
class Placement:
    """One dispatch decision: start ``job_id`` on ``node`` now.

    ``backfill`` is True when a higher-ordered job stayed pending because it could not
    start now; the policy guarantees this start does not delay that job's reservation.
    """

    job_id: str
    node: str
    backfill: bool = False


@dataclass(frozen=True, slots=True)
class Reservation:
    """Resources promised to a blocked job on one node from ``start`` until ``end``."""

    job_id: str
    node: str
    start: float
    end: float
    demand: Demand

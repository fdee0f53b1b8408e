"""Why pending jobs wait: the dispatcher's note per request shape, put in words when read.

Jobs with the same request (cores, memory, disk, labels, licences, time limit) wait for
the same reason, so the dispatcher writes one :class:`ShapeWait` per shape, and only when
it changes: the code, the first job in line, the node or job in the way, and the
reservations held. :func:`explain` renders it for one job at the moment it is read
("waiting behind job X" for every job but the first), so the head of a queue moving
rewrites one note, not one reason per waiting job.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simfarm.common.capacity import Demand
from simfarm.common.models import ResourceRequest


@dataclass(frozen=True, slots=True)
class PendingReason:
    """Why a job is still pending, in words and as a machine-readable code.

    Codes: ``never-fits`` (no live node could ever run it), ``limit`` (its user or
    account is at a running limit), ``no-room`` (waiting for resources), ``licenses``
    (waiting for licences of a farm pool),
    ``licenses-reserved`` (the pool's free licences are reserved for a job ahead in
    line), ``held`` (every node that could run it is held by its local limits),
    ``reserved`` (free resources are reserved for a job ahead in line), ``behind``
    (an earlier job with the same request is first in line), ``order`` (backfill is off
    and a job ahead cannot start), ``new`` (not yet considered).
    """

    code: str
    message: str
    node: str | None = None
    start_by: float | None = None


@dataclass(frozen=True, slots=True)
class ShapeWait:
    """What the dispatcher last learned about the pending jobs of one shape."""

    #: a :class:`PendingReason` code (all but ``behind``, which readers derive)
    code: str
    #: the first job in line
    head: str | None = None
    #: what one job needs, in words (``Demand.describe``)
    need: str = ""
    #: how many live nodes could ever run it
    eligible: int = 0
    #: never-fits: why no node can
    never: str | None = None
    #: reserved: the node whose free resources are reserved; held: one held node
    node: str | None = None
    #: reserved, licenses-reserved: the job they are reserved for; held: why that node
    #: is held; licenses: the pool
    blocker: str | None = None
    #: the words for the first job in line when the dispatcher puts them itself
    #: (licences: they quote the pool's counts at the time)
    text: str | None = None
    #: reservations of jobs of this shape: job id -> (node, start)
    holds: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    #: "account cfd is over its share: ..." while its account (or user) is over its
    #: fair share and other users' jobs wait too
    share: str | None = None

    def to_json(self) -> str:
        """The stored form (compact JSON)."""
        data: dict[str, Any] = {"code": self.code}
        for name in ("head", "need", "eligible", "never", "node", "blocker", "text", "share"):
            value = getattr(self, name)
            if value:
                data[name] = value
        if self.holds:
            data["holds"] = {k: [n, s] for k, (n, s) in self.holds.items()}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ShapeWait:
        """Read the compact JSON form back."""
        data = json.loads(raw)
        holds = {k: (str(v[0]), float(v[1])) for k, v in data.pop("holds", {}).items()}
        return cls(holds=holds, **data)

    def stored(self, at: float) -> str:
        """The stored form: when it was written, a space, the JSON."""
        return f"{at!r} {self.to_json()}"

    @classmethod
    def from_stored(cls, raw: str | bytes) -> tuple[float, ShapeWait]:
        """``(written at, note)`` from the stored form."""
        text = raw.decode() if isinstance(raw, bytes) else raw
        at, _, note = text.partition(" ")
        return float(at), cls.from_json(note)


def shape_key(demand: Demand, time_limit_s: float | None, account: str = "",
              user: str = "") -> str:
    """A short stable name for a request shape and who pays for it (the dispatcher and
    readers agree on it). A node's licence tokens and a farm pool's licences count
    alike: readers see only the request, and which licences are pooled is the same for
    every job."""
    licences = {**demand.licenses, **demand.pool}
    parts: list[Any] = [demand.cores, demand.memory_mb, demand.disk_mb,
                        sorted(demand.labels.items()), sorted(licences.items()), time_limit_s]
    if account or user:
        parts += [account, user]
    raw = json.dumps(parts, separators=(",", ":"))
    return hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def request_shape(resources: ResourceRequest, timeout_s: float | None, account: str = "",
                  user: str = "") -> str:
    """The shape name of a job with this request and time limit, of ``user`` charging
    ``account``."""
    return shape_key(Demand(resources.cores, resources.memory_mb, resources.disk_mb,
                            dict(resources.labels), dict(resources.licenses)), timeout_s,
                     account, user)


def fmt_time(t: float) -> str:
    """An absolute time as users read it (stable across dispatch rounds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def explain(wait: ShapeWait, job_id: str, now: float) -> PendingReason:
    """Why ``job_id``, a pending job of the shape ``wait`` describes, has not started."""
    if wait.code == "never-fits":
        return PendingReason("never-fits", f"never fits any live node: {wait.never}")
    hold = wait.holds.get(job_id)
    if wait.head is not None and wait.head != job_id:
        text = f"waiting behind job {wait.head}, which has the same request"
        if hold is not None:
            return PendingReason("behind", f"{text}; reserved on {hold[0]}, starting by "
                                           f"{fmt_time(hold[1])}", hold[0], hold[1])
        return PendingReason("behind", text)
    code = wait.code
    if code == "limit":
        return PendingReason("limit", f"{wait.text}; it starts when one of those jobs ends")
    if code == "reserved":
        text = (f"free resources on {wait.node} are reserved for job {wait.blocker}, "
                f"ahead in line")
    elif code == "held":
        more = wait.eligible - 1
        text = (f"every node that can run it is held by its local limits ({wait.node}: "
                f"{wait.blocker}{f' and {more} more' if more > 0 else ''})")
    elif code == "no-room":
        text = f"waiting for {wait.need} on one of {wait.eligible} node(s) that can run it"
    elif code == "order":
        text = "waiting for the jobs ahead in line to start first (backfill is off)"
    elif wait.text:
        text = wait.text
    else:
        return PendingReason("new", "not considered by the dispatcher yet")
    if wait.share:
        text = f"{text}; {wait.share}"
    if hold is not None:
        when = "now" if hold[1] <= now else fmt_time(hold[1])
        return PendingReason(code, f"{text}; reserved on {hold[0]}, starting by {when}",
                             hold[0], hold[1])
    return PendingReason(code, text)

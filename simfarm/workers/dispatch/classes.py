"""Pending jobs grouped by shape: same request, labels, licences and time limit.

Jobs of one shape are interchangeable for placement, so if the first of them cannot
start, none of the others can either. The dispatcher therefore looks at one job per shape
per round, which keeps a round proportional to the number of shapes, not of jobs.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping

from simfarm.common.capacity import Demand
from simfarm.common.waiting import shape_key
from simfarm.workers.dispatch.data import Key, PendingJob
from simfarm.workers.dispatch.nodes import Hold, NodeState

Shape = tuple[int, int, int, tuple[tuple[str, int], ...], tuple[tuple[str, str], ...],
              float | None, tuple[tuple[str, int], ...], str, str]


def shape_of(job: PendingJob) -> Shape:
    """The grouping key of a job: its request, and who pays (jobs of different users
    rank apart under fair share and limits)."""
    dem = job.demand
    return (
        dem.cores, dem.memory_mb, dem.disk_mb, tuple(sorted(dem.licenses.items())),
        tuple(sorted(dem.labels.items())), job.time_limit_s, tuple(sorted(dem.pool.items())),
        job.account, job.user,
    )


class Group:
    """The classes of one request — cores, memory, disk, node licences, labels — which
    are therefore eligible on the same nodes (computed once for all of them). A loosened
    node wakes the classes of the groups that fit it, and only the *active* ones (with a
    pending job some node could run): the classes of a user whose jobs all started, or of
    a shape seen once, cost a wake nothing."""

    __slots__ = ("active", "c", "d", "eligible", "eligible_set", "epoch", "gid", "m", "never")

    def __init__(self, gid: int, demand: Demand) -> None:
        self.gid = gid
        self.c, self.m, self.d = demand.cores, demand.memory_mb, demand.disk_mb
        #: the classes with an entry in the scheduler's order, by uid
        self.active: dict[int, JobClass] = {}
        self.eligible: list[NodeState] = []
        self.eligible_set: set[int] = set()
        self.never: str | None = None
        #: the node index version :attr:`eligible` was computed for (-1: never)
        self.epoch = -1


class JobClass:
    """The queue of pending jobs of one shape, in dispatch order, plus what the policy
    last learned about it (candidate nodes, reservations, why it is blocked)."""

    __slots__ = (
        "block", "bucket", "c", "checked", "d", "demand", "eligible", "eligible_set",
        "entry", "fresh", "group", "holds", "in_round", "lic", "limit", "m", "maybe", "name",
        "never",
        "offset", "pool", "queue", "shape", "uid",
    )

    def __init__(self, shape: Shape, demand: Demand, limit: float | None, uid: int,
                 account: str = "", user: str = "") -> None:
        self.shape = shape
        self.uid = uid
        #: the shape's stable name, shared with readers of pending reasons
        self.name = shape_key(demand, limit, account, user)
        #: the :class:`~.shares.Bucket` of its jobs, and its fair-share offset (seconds
        #: its jobs rank earlier than their own keys say)
        self.bucket: object = None
        self.offset = 0.0
        self.demand = demand
        self.c, self.m, self.d = demand.cores, demand.memory_mb, demand.disk_mb
        self.lic: Mapping[str, int] = dict(demand.licenses)
        #: licences of the farm's pools (counted farm-wide, not on a node)
        self.pool: Mapping[str, int] = dict(demand.pool)
        self.limit = limit
        #: ``(key, job id)`` of the pending jobs, sorted (their own keys: :meth:`rank`
        #: places them among other classes)
        self.queue: list[tuple[Key, str]] = []
        self.eligible: list[NodeState] = []
        self.eligible_set: set[int] = set()
        self.never: str | None = None
        #: the :class:`Group` of classes with the same request (None until indexed)
        self.group: Group | None = None
        #: ``(*head rank, uid, self)`` while the class is in the scheduler's order (flat:
        #: the round's heap compares these)
        self.entry: tuple[float, int, int, JobClass] | None = None
        #: number of the dispatch round that last queued this class for a visit
        self.in_round = 0
        #: nodes that had room at the last check; others only after they loosen
        self.maybe: list[NodeState] = []
        #: False until checked against every eligible node (again after the set changed)
        self.checked = False
        #: nodes loosened since the last check that now fit the class, by node index
        self.fresh: dict[int, NodeState] = {}
        #: reservations of the first jobs in line, by job id
        self.holds: dict[str, Hold] = {}
        #: why the head could not start last time: a code and the node or hold involved
        self.block: tuple[str, object] = ("new", None)

    def rank(self, key: Key) -> Key:
        """Where a job of this class with order key ``key`` stands among all jobs."""
        return (key[0] - self.offset, key[1]) if self.offset else key

    def push(self, key: Key, job_id: str) -> None:
        """Queue a job."""
        insort(self.queue, (key, job_id))

    def remove(self, key: Key, job_id: str) -> None:
        """Take a job out of the queue."""
        queue = self.queue
        i = bisect_left(queue, (key, job_id))
        if i < len(queue) and queue[i] == (key, job_id):
            del queue[i]

    @property
    def head(self) -> tuple[Key, str] | None:
        """``(key, job id)`` of the first job in line, if any."""
        return self.queue[0] if self.queue else None

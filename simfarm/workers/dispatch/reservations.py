"""Reservations of blocked jobs: making them, keeping them valid, handing them on.

A reservation (a :class:`~.nodes.Hold`) promises a blocked job the resources it needs on
one node from its earliest possible start, computed from the planned ends of the jobs
running there and the reservations of better-ranked jobs. Only the best-ranked blocked
jobs hold one (``max_reservations``, the first ``reservations_per_shape`` of each shape).
Whenever something changes on a node, the reservations ranked after the change are
checked again and dropped if they no longer fit; their owners get a new one next round.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable, Mapping

from simfarm.workers.dispatch.bounds import BoundIndex, earliest_indexed
from simfarm.workers.dispatch.classes import JobClass
from simfarm.workers.dispatch.config import PolicyConfig
from simfarm.workers.dispatch.data import Key
from simfarm.workers.dispatch.nodes import INF, Hold, NodeState
from simfarm.workers.dispatch.pools import Pools

FIRST: Key = (-INF, -1)
#: rounds of "earliest on a node, then earliest in the pools from there" before giving up
_JOINT_TRIES = 8


def _rank(hold: Hold) -> Key:
    return hold.key


class ReservationBook:
    """Every reservation of the farm, and the rules for making and dropping them."""

    def __init__(
        self, config: PolicyConfig, nodes: Callable[[], Iterable[NodeState]],
        dirty: Callable[[JobClass], None], loosen: Callable[[NodeState], None],
        pools: Pools | None = None,
        loosen_pools: Callable[[Mapping[str, int]], None] | None = None,
        changed: Callable[[JobClass], None] = lambda cls: None,
        bounds: BoundIndex | None = None,
    ) -> None:
        self.config = config
        #: every reservation held now, best-ranked first
        self.all: list[Hold] = []
        self._nodes = nodes
        self._dirty = dirty
        self._loosen = loosen
        self.pools = pools if pools is not None else Pools()
        self._loosen_pools = loosen_pools
        #: told about every class whose reservations were made, moved or dropped
        self._changed = changed
        #: the nodes in the order of their bound, per core count
        self.bounds = bounds if bounds is not None else BoundIndex()

    @property
    def count(self) -> int:
        """How many reservations are held."""
        return len(self.all)

    def ensure(self, cls: JobClass, now: float) -> None:
        """Give the first jobs in line of a blocked class a reservation each."""
        queue = cls.queue
        if not queue:
            return
        held = self.all
        if len(held) >= self.config.max_reservations and held[-1].key <= cls.rank(queue[0][0]):
            return  # every reservation ranks ahead of this class (the common case)
        for own, job_id in queue[: self.config.reservations_per_shape]:
            if job_id in cls.holds:
                continue
            key = cls.rank(own)
            if self.count >= self.config.max_reservations and not self.evict_lowest(key):
                return
            if not self.reserve(cls, key, job_id, now):
                return

    def evict_lowest(self, key: Key) -> bool:
        """Make room for a reservation ranked at ``key`` by dropping the lowest-ranked one,
        if that ranks after ``key``: reservations go to the best-ranked blocked jobs."""
        if not self.all:
            return False
        lowest = self.all[-1]
        if lowest.key <= key:
            return False
        self.drop([lowest])
        return True

    def reserve(self, cls: JobClass, key: Key, job_id: str, now: float) -> bool:
        """Reserve the earliest slot for one job, around the reservations ahead of it:
        on a node, and in the licence pools it needs. A job that waits for licences is
        reserved cores only from when its licences are due, so it blocks no core
        before then."""
        length = cls.limit if cls.limit is not None else INF
        c, m, d, lic = cls.c, cls.m, cls.d, cls.lic
        best, best_t = earliest_indexed(self.bounds.ranked(c), cls.eligible_set, c, m, d, lic,
                                        length, now, key)
        if best is None:
            return False
        if cls.pool:
            best, best_t = self._joint(cls, key, length, best, best_t)
            if best is None:
                return False
        hold = Hold(cls, job_id, key, best, best_t, best_t + length, c, m, d, lic, cls.pool)
        best.holds.append(hold)
        cls.holds[job_id] = hold
        self._changed(cls)
        insort(self.all, hold, key=_rank)
        if hold.pool:
            self.pools.holds.append(hold)
            self.revalidate_pools(after=key)
        self.revalidate(best, after=key)
        return True

    def _joint(self, cls: JobClass, key: Key, length: float, node: NodeState | None,
               t: float) -> tuple[NodeState | None, float]:
        """The earliest time from ``t`` when both a node and the pools have room."""
        before = self.pools.before(key)
        for _ in range(_JOINT_TRIES):
            due = self.pools.earliest(cls.pool, length, t, before)
            if due >= INF:
                return None, INF
            if due <= t and node is not None:
                return node, t
            node, t = earliest_indexed(self.bounds.ranked(cls.c), cls.eligible_set, cls.c,
                                       cls.m, cls.d, cls.lic, length, due, key)
            if node is None:
                return None, INF
        return None, INF

    def advance(self, nodes: Iterable[NodeState], now: float) -> None:
        """Move reservations earlier where ``nodes`` (which freed resources) now allow.

        Running jobs usually end before their time limit; without this a reservation
        would keep the start computed from those limits, and backfill would fill the
        node up to it instead of letting the blocked job start when the node drains.
        """
        holds = list(self.all)
        for node in nodes:
            if not node.alive or node.held is not None:
                continue
            index = node.index
            for h in holds:
                if h.start <= now:  # the cheapest test first: this runs per node and hold
                    continue
                owner = h.owner
                assert isinstance(owner, JobClass)
                if (index not in owner.eligible_set or owner.holds.get(h.job_id) is not h
                        or node.cores_free_from(h.c) >= h.start):
                    continue
                before = [o for o in node.holds if o.key < h.key]
                length = h.end - h.start
                t = node.earliest(h.c, h.m, h.d, h.lic, length, now, before, h.start)
                if t >= h.start:
                    continue
                if h.pool and not self.pools.fits_window(h.pool, t, t + length,
                                                         self.pools.before(h.key)):
                    continue
                old = h.node
                old.holds.remove(h)
                h.node, h.start, h.end = node, t, t + length
                node.holds.append(h)
                self._changed(owner)
                self.revalidate(node, after=h.key)
                if h.pool:
                    self.revalidate_pools(after=h.key)
                if old is not node:
                    self._loosen(old)

    def pass_on(self, cls: JobClass, job_id: str, started_on: NodeState) -> None:
        """A job started: its reservation, if it started elsewhere, goes to the next job
        of the same shape that has none (identical needs, so it still fits); else it is
        released."""
        hold = cls.holds.get(job_id)
        if hold is None:
            return
        if hold.node is not started_on:
            for key, other in cls.queue:
                if other not in cls.holds:
                    del cls.holds[job_id]
                    self.all.remove(hold)
                    hold.job_id, hold.key = other, cls.rank(key)
                    insort(self.all, hold, key=_rank)
                    cls.holds[other] = hold
                    self._changed(cls)
                    # ranked later now: jobs ranked in between are no longer bound by it
                    self._loosen(hold.node)
                    return
        self.drop([hold])

    def rerank(self) -> None:
        """Some reservations changed rank (fair share moved their owners): keep the book
        in rank order, drop those that no longer fit behind the ones now ahead of them,
        and let the classes that may use what they held look again."""
        self.all.sort(key=_rank)
        nodes = {h.node.index: h.node for h in self.all}
        for node in nodes.values():
            self.revalidate(node)
            self._loosen(node)
        if self.pools.holds:
            self.revalidate_pools()
            if self._loosen_pools is not None:
                for h in list(self.pools.holds):
                    self._loosen_pools(h.pool)

    def drop_job(self, cls: JobClass, job_id: str) -> None:
        """Release the reservation of a job that no longer needs it."""
        hold = cls.holds.get(job_id)
        if hold is not None:
            self.drop([hold])

    def revalidate(self, node: NodeState, after: Key = FIRST) -> None:
        """Drop reservations on ``node`` (ordered after ``after``) that no longer fit."""
        if not node.holds:
            return
        kept: list[Hold] = []
        dropped: list[Hold] = []
        for h in sorted(node.holds, key=lambda h: h.key):
            if h.key <= after or node.fits_window(h.c, h.m, h.d, h.lic, h.start, h.end, kept):
                kept.append(h)
            else:
                dropped.append(h)
        if dropped:
            self.drop(dropped)

    def revalidate_pools(self, after: Key = FIRST) -> None:
        """Drop pool reservations (ordered after ``after``) that no longer fit: a job took
        licences, or a pool shrank (licences in use outside the farm)."""
        if not self.pools.holds:
            return
        kept: list[Hold] = []
        dropped: list[Hold] = []
        for h in sorted(self.pools.holds, key=_rank):
            if h.key <= after or self.pools.fits_window(h.pool, h.start, h.end, kept):
                kept.append(h)
            else:
                dropped.append(h)
        if dropped:
            self.drop(dropped)

    def drop_pool_holds(self, names: Iterable[str], now: float) -> None:
        """Licences of these pools were freed: reservations of them that are not due yet
        are made again next round, from the new (earlier) time."""
        wanted = set(names)
        stale = [h for h in self.pools.holds if h.start > now and wanted & set(h.pool)]
        if stale:
            self.drop(stale)

    def drop(self, holds: list[Hold]) -> None:
        """Release reservations; their owners are re-examined next round."""
        for h in holds:
            owner = h.owner
            assert isinstance(owner, JobClass)
            if owner.holds.get(h.job_id) is h:
                del owner.holds[h.job_id]
                self.all.remove(h)
                self._dirty(owner)
                self._changed(owner)
            if h in h.node.holds:
                h.node.holds.remove(h)
                self._loosen(h.node)
            if h.pool and h in self.pools.holds:
                self.pools.holds.remove(h)
                if self._loosen_pools is not None:
                    self._loosen_pools(h.pool)

"""Reservations of blocked jobs: making them, keeping them valid, handing them on.

A reservation (a :class:`~.nodes.Hold`) promises a blocked job the resources it needs on
one node from its earliest possible start, computed from the planned ends of the jobs
running there and the reservations of better-ranked jobs. Only the best-ranked blocked
jobs hold one (``max_reservations``, the first ``reservations_per_shape`` of each shape).
Whenever something changes on a node, the reservations ranked after the change are
checked again and dropped if they no longer fit; their owners get a new one next round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from simfarm.workers.dispatch.classes import JobClass
from simfarm.workers.dispatch.config import PolicyConfig
from simfarm.workers.dispatch.nodes import INF, Hold, NodeState
from simfarm.workers.dispatch.views import Key

FIRST: Key = (-INF, -1)


class ReservationBook:
    """Every reservation of the farm, and the rules for making and dropping them."""

    def __init__(
        self, config: PolicyConfig, nodes: Callable[[], Iterable[NodeState]],
        dirty: Callable[[JobClass], None], loosen: Callable[[NodeState], None],
    ) -> None:
        self.config = config
        self.count = 0
        self._nodes = nodes
        self._dirty = dirty
        self._loosen = loosen

    def ensure(self, cls: JobClass, now: float) -> None:
        """Give the first jobs in line of a blocked class a reservation each."""
        for key, job_id in cls.queue[: self.config.reservations_per_shape]:
            if job_id in cls.holds:
                continue
            if self.count >= self.config.max_reservations and not self.evict_lowest(key):
                return
            if not self.reserve(cls, key, job_id, now):
                return

    def evict_lowest(self, key: Key) -> bool:
        """Make room for a reservation ranked at ``key`` by dropping the lowest-ranked one,
        if that ranks after ``key``: reservations go to the best-ranked blocked jobs."""
        lowest: Hold | None = None
        for node in self._nodes():
            for h in node.holds:
                if lowest is None or h.key > lowest.key:
                    lowest = h
        if lowest is None or lowest.key <= key:
            return False
        self.drop([lowest])
        return True

    def reserve(self, cls: JobClass, key: Key, job_id: str, now: float) -> bool:
        """Reserve the earliest slot for one job, around the reservations ahead of it."""
        length = cls.limit if cls.limit is not None else INF
        c, m, d, lic = cls.c, cls.m, cls.d, cls.lic
        best: NodeState | None = None
        best_t = INF
        for node in cls.eligible:
            if node.held is not None:
                continue
            before = [h for h in node.holds if h.key < key] if node.holds else []
            t = node.earliest(c, m, d, lic, length, now, before, best_t)
            if t < best_t:
                best, best_t = node, t
                if t <= now:
                    break
        if best is None:
            return False
        hold = Hold(cls, job_id, key, best, best_t, best_t + length, c, m, d, lic)
        best.holds.append(hold)
        cls.holds[job_id] = hold
        self.count += 1
        self.revalidate(best, after=key)
        return True

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
                    hold.job_id, hold.key = other, key
                    cls.holds[other] = hold
                    # ranked later now: jobs ranked in between are no longer bound by it
                    self._loosen(hold.node)
                    return
        self.drop([hold])

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

    def drop(self, holds: list[Hold]) -> None:
        """Release reservations; their owners are re-examined next round."""
        for h in holds:
            owner = h.owner
            assert isinstance(owner, JobClass)
            if owner.holds.get(h.job_id) is h:
                del owner.holds[h.job_id]
                self.count -= 1
                self._dirty(owner)
            if h in h.node.holds:
                h.node.holds.remove(h)
                self._loosen(h.node)

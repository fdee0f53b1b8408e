"""What changed since a class was last looked at, so a round visits only what could move.

Nodes that *loosen* — free resources, lose a reservation, get released from a hold, join
the farm — are appended to a log. Each round reads the log from where it stopped and,
through an index from node to the groups of classes it could run (sorted by cores; a
:class:`~.classes.Group` is the classes of one request), wakes the active classes that
now fit a loosened node and notes that node on the class. A class remembers
the nodes that fitted at its last check; next time only those and the nodes noted since
are candidates, so a visit costs a few nodes, not every eligible one.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterator, Sequence
from heapq import heappush

from simfarm.workers.dispatch.classes import Group, JobClass
from simfarm.workers.dispatch.data import Key
from simfarm.workers.dispatch.nodes import NodeState

#: the log is cleared (and every class checked in full once) when it reaches this length
LOG_MAX = 100_000
#: queue a class for a visit this round, if it ranks after the given key
Want = Callable[[JobClass, Key], None]
#: a class's place in the scheduler's order: ``(*head rank, uid, class)``
Entry = tuple[float, int, int, JobClass]


class ChangeLog:
    """The loosen log, the scheduler's read mark in it, and the node→classes index."""

    def __init__(self, on_reset: Callable[[], None]) -> None:
        self.log: list[NodeState] = []
        self.mark = 0
        self.by_node: dict[int, list[tuple[int, int, int, int, Group]]] = {}
        #: version of :attr:`by_node` (a new one whenever the set of nodes changed)
        self.epoch = 0
        self.groups: dict[tuple[object, ...], Group] = {}
        self._on_reset = on_reset

    def loosen(self, node: NodeState) -> None:
        """Record that ``node`` may now take jobs it could not take before."""
        if len(self.log) >= LOG_MAX:
            self.log.clear()
            self.mark = 0
            self._on_reset()
        self.log.append(node)

    def group_of(self, cls: JobClass) -> Group:
        """The group of ``cls`` (the classes of the same request), joined on first use."""
        group = cls.group
        if group is None:
            key = cls.shape[:5]  # cores, memory, disk, node licences, labels
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(len(self.groups), cls.demand)
            cls.group = group
        return group

    def reset_index(self) -> None:
        """The set of nodes changed: every group is indexed again (:meth:`index`)."""
        self.by_node = {}
        self.epoch += 1

    def index(self, group: Group) -> None:
        """List ``group`` under every node it is eligible on (its :attr:`~.Group.eligible`
        just computed)."""
        entry = (group.c, group.m, group.d, group.gid, group)
        for node in group.eligible:
            insort(self.by_node.setdefault(node.index, []), entry)
        group.epoch = self.epoch

    def candidates(self, cls: JobClass) -> Sequence[NodeState]:
        """Nodes worth checking for ``cls``: those that fitted at its last check plus the
        ones noted on it since (every eligible node if it was never checked)."""
        if not cls.checked:
            return cls.eligible
        fresh = cls.fresh
        if not fresh:
            return cls.maybe
        out = list(cls.maybe)
        seen = {n.index for n in out}
        for index, node in fresh.items():
            if index not in seen and node.alive:
                out.append(node)
        return out

    def wake(self, want: Want, after: Key) -> None:
        """Note every node loosened since the mark on the classes that now fit it, and call
        ``want`` for each of those classes."""
        for node in self._loosened():
            fc, fm, fd = node.free_c, node.free_m, node.free_d
            for c, m, d, _, group in self.by_node.get(node.index, ()):
                if c > fc:
                    break
                if m <= fm and d <= fd:
                    for cls in group.active.values():
                        cls.fresh[node.index] = node
                        want(cls, after)

    def _loosened(self) -> Iterator[NodeState]:
        """Each live, unheld node with a free slot loosened since the mark, once; the mark
        moves past the log when the walk is done."""
        log = self.log
        if self.mark > len(log):  # the log was reset: look at everything
            self.mark = 0
        seen: set[int] = set()
        for node in log[self.mark:]:
            if node.index in seen or not node.alive or node.held is not None:
                continue
            seen.add(node.index)
            if node.free_s >= 1:
                yield node
        self.mark = len(log)

    def wake_into(self, work: list[Entry], rnd: int, after: Key, heap: bool) -> None:
        """:meth:`wake` for the backfill round, its ``want`` inlined (the hot loop of a
        round under a backlog: every class that fits a loosened node passes here): queue
        on ``work`` the entry of each class ranked after ``after`` not yet queued in round
        ``rnd`` — pushed on the heap with ``heap``, else appended (the caller heapifies)."""
        by_node = self.by_node
        a0, a1 = after
        for node in self._loosened():
            index = node.index
            fc, fm, fd = node.free_c, node.free_m, node.free_d
            for c, m, d, _, group in by_node.get(index, ()):
                if c > fc:
                    break
                if m <= fm and d <= fd:
                    for cls in group.active.values():
                        cls.fresh[index] = node
                        entry = cls.entry
                        if (cls.in_round != rnd and entry is not None
                                and (entry[0] > a0 or (entry[0] == a0 and entry[1] > a1))):
                            cls.in_round = rnd
                            if heap:
                                heappush(work, entry)
                            else:
                                work.append(entry)

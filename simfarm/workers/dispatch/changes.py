"""What changed since a class was last looked at, so a round visits only what could move.

Nodes that *loosen* — free resources, lose a reservation, get released from a hold, join
the farm — are appended to a log. A class remembers its position in the log when it was
last checked and the nodes that fitted then; next time only those and the nodes loosened
since are candidates. An index from node to the classes it could run (sorted by cores)
finds the classes worth waking when a node loosens.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Sequence

from simfarm.workers.dispatch.classes import JobClass
from simfarm.workers.dispatch.nodes import NodeState
from simfarm.workers.dispatch.views import Key

#: the log is cleared (and every class checked in full once) when it reaches this length
LOG_MAX = 100_000
Want = Callable[[JobClass, Key], None]


class ChangeLog:
    """The loosen log, the scheduler's read mark in it, and the node→classes index."""

    def __init__(self, on_reset: Callable[[], None]) -> None:
        self.log: list[NodeState] = []
        self.mark = 0
        self.by_node: dict[int, list[tuple[int, int, int, int, JobClass]]] = {}
        self._on_reset = on_reset

    @property
    def position(self) -> int:
        """Where the log ends now."""
        return len(self.log)

    def loosen(self, node: NodeState) -> None:
        """Record that ``node`` may now take jobs it could not take before."""
        if len(self.log) >= LOG_MAX:
            self.log.clear()
            self.mark = 0
            self._on_reset()
        self.log.append(node)

    def index(self, cls: JobClass) -> None:
        """List ``cls`` under every node it is eligible on."""
        entry = (cls.c, cls.m, cls.d, cls.uid, cls)
        for node in cls.eligible:
            insort(self.by_node.setdefault(node.index, []), entry)

    def candidates(self, cls: JobClass) -> Sequence[NodeState]:
        """Nodes worth checking for ``cls``: those that fitted at its last check plus the
        eligible ones loosened since (every eligible node if it was never checked)."""
        eligible = cls.eligible
        since = cls.checked_at
        if since < 0 or since > len(self.log):
            return eligible
        new = self.log[since:]
        if not new:
            return cls.maybe
        if len(new) >= len(eligible):
            return eligible
        elig = cls.eligible_set
        seen = {n.index for n in cls.maybe}
        out = list(cls.maybe)
        for n in new:
            if n.index in elig and n.index not in seen and n.alive:
                seen.add(n.index)
                out.append(n)
        return out

    def wake(self, want: Want, after: Key) -> None:
        """Call ``want`` for every class that could use a node loosened since the mark."""
        log = self.log
        if self.mark > len(log):  # the log was reset: look at everything
            self.mark = 0
        if self.mark == len(log):
            return
        seen: set[int] = set()
        for node in log[self.mark:]:
            if node.index in seen or not node.alive or node.held is not None:
                continue
            seen.add(node.index)
            if node.free_s < 1:
                continue
            fc, fm, fd = node.free_c, node.free_m, node.free_d
            for c, m, d, _, cls in self.by_node.get(node.index, ()):
                if c > fc:
                    break
                if m <= fm and d <= fd and cls.entry is not None:
                    want(cls, after)
        self.mark = len(log)

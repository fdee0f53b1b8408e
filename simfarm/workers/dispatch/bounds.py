"""The farm's nodes in the order of a cheap bound of when a request could start there.

A new reservation looks for the node where its job starts earliest
(:func:`earliest_indexed`). Trying the nodes in the order of a lower bound of that time
— when enough cores are free, from the planned ends of the running jobs alone
(:meth:`~.nodes.NodeState.cores_free_from`) — lets it stop at the first node whose bound
cannot beat the best found, usually after a few nodes. :class:`BoundIndex` keeps that
order per core count, updated only for the nodes whose running jobs changed since it was
last asked, so a reservation no longer computes and sorts the bound of every eligible
node.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping

from simfarm.workers.dispatch.data import Key
from simfarm.workers.dispatch.nodes import INF, NodeState, best_start

#: ``(bound, node index, node)``, sorted: node indexes are unique, so nodes are never
#: compared
Ranked = list[tuple[float, int, NodeState]]
#: the change log is cleared (and every order built again when next asked) at this length
LOG_MAX = 4096


class BoundIndex:
    """Every node of the policy, sorted by :meth:`~.nodes.NodeState.cores_free_from` of
    each core count asked for. Nodes tell :meth:`note` when their running jobs change
    (:attr:`~.nodes.NodeState.watch`)."""

    def __init__(self) -> None:
        self._nodes: dict[int, NodeState] = {}
        #: nodes whose running jobs changed, oldest first (repeats allowed)
        self.log: list[NodeState] = []
        #: per core count: the order, each node's bound in it, and the read mark in the log
        self._ranked: dict[int, Ranked] = {}
        self._filed: dict[int, dict[int, float]] = {}
        self._marks: dict[int, int] = {}

    def add(self, node: NodeState) -> None:
        """Index a new node."""
        self._nodes[node.index] = node
        node.watch = self.note
        self._forget()

    def remove(self, node: NodeState) -> None:
        """Forget a node (replaced or removed)."""
        if self._nodes.pop(node.index, None) is not None:
            node.watch = None
            self._forget()

    def note(self, node: NodeState) -> None:
        """``node``'s running jobs changed. The log is bounded: past :data:`LOG_MAX`
        changes the orders are built again when next asked."""
        log = self.log
        log.append(node)
        if len(log) >= LOG_MAX:
            self._forget()

    def _forget(self) -> None:
        self.log.clear()
        self._ranked.clear()
        self._filed.clear()
        self._marks.clear()

    def ranked(self, c: int) -> Ranked:
        """Every node that can ever have ``c`` cores free, by ``(bound, index)``."""
        ranked = self._ranked.get(c)
        log = self.log
        if ranked is None:
            filed = {i: n.cores_free_from(c) for i, n in self._nodes.items()}
            ranked = sorted((b, i, self._nodes[i]) for i, b in filed.items() if b < INF)
            self._ranked[c], self._filed[c], self._marks[c] = ranked, filed, len(log)
            return ranked
        mark = self._marks[c]
        if mark < len(log):
            filed = self._filed[c]
            seen: set[int] = set()
            for node in log[mark:]:
                index = node.index
                if index in seen:
                    continue
                seen.add(index)
                old = filed[index]
                new = node.cores_free_from(c)
                if new == old:
                    continue
                filed[index] = new
                if old < INF:
                    del ranked[bisect_left(ranked, (old, index))]
                if new < INF:
                    insort(ranked, (new, index, node))
            self._marks[c] = len(log)
        return ranked


def earliest_indexed(
    ranked: Ranked, eligible: set[int], c: int, m: int, d: int, lic: Mapping[str, int],
    length: float, now: float, key: Key,
) -> tuple[NodeState | None, float]:
    """:func:`~.nodes.earliest_node` over the nodes whose index is in ``eligible``, given
    them in the order of their bound (:meth:`BoundIndex.ranked` of ``c``): the same node
    and time, since the eligible nodes are listed by index and the lowest index wins a
    tie."""
    return best_start(ranked, c, m, d, lic, length, now, key, usable=eligible)

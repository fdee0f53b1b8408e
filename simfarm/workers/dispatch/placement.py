"""Choosing the node a job starts on now, or saying why it cannot start."""

from __future__ import annotations

from collections.abc import Sequence

from simfarm.workers.dispatch.classes import JobClass
from simfarm.workers.dispatch.data import Key
from simfarm.workers.dispatch.nodes import INF, Hold, NodeState
from simfarm.workers.dispatch.pools import Pools


def pools_allow(cls: JobClass, key: Key, pools: Pools, now: float, holds: bool) -> bool:
    """Whether the licences of the farm's pools that ``cls`` needs are free now and, with
    ``holds``, stay so until its planned end beside the better-ranked reservations of the
    pools; records why not in ``cls.block``."""
    need = cls.pool
    if not need:
        return True
    short = pools.fits_now(need)
    if short is not None:
        cls.block = ("licenses", short)
        return False
    if holds and pools.holds:
        before = pools.before(key)
        end = now + (cls.limit if cls.limit is not None else INF)
        if before and not pools.fits_window(need, now, end, before):
            cls.block = ("licenses-reserved", before[0])
            return False
    return True


def choose_node(
    cls: JobClass, key: Key, candidates: Sequence[NodeState], now: float, holds: bool
) -> tuple[NodeState | None, list[NodeState]]:
    """The node the first job of ``cls`` (ranked ``key``) should start on now, and every
    candidate it fits on; records why it cannot start in ``cls.block``.

    A node qualifies if it is alive, not held, has the resources free now and — with
    ``holds`` — starting there breaks no reservation of a better-ranked job. Among those,
    with ``holds``, nodes where the job also leaves every *lower*-ranked reservation
    intact come first (it may take reserved resources, but not when an equal choice
    spares them); then the smallest machine wins, then the tightest fit (fewest cores,
    then least memory, left over): big machines stay free for the jobs only they can run.
    """
    c, m, d, lic = cls.c, cls.m, cls.d, cls.lic
    end = now + (cls.limit if cls.limit is not None else INF)
    best: NodeState | None = None
    best_score: tuple[bool, int, int, int, int] = (False, 0, 0, 0, 0)
    fitting: list[NodeState] = []
    reserved_by: Hold | None = None
    held: NodeState | None = None
    for node in candidates:
        if not node.alive:
            continue
        if node.held is not None:
            held = held or node
            continue
        if (node.free_c < c or node.free_m < m or node.free_d < d or node.free_s < 1
                or (lic and not node.fits_now(c, m, d, lic))):  # fits_now inlined: hot loop
            continue
        intrudes = False
        if holds and node.holds:
            before = [h for h in node.holds if h.key < key]
            if before and not node.fits_window(c, m, d, lic, now, end, before):
                reserved_by = reserved_by or before[0]
                continue
            if len(before) < len(node.holds):
                intrudes = not node.fits_window(c, m, d, lic, now, end, node.holds)
        fitting.append(node)
        score = (intrudes, node.cap.cores, node.free_c - c, node.free_m - m, node.index)
        if best is None or score < best_score:
            best, best_score = node, score
    if best is None:
        if reserved_by is not None:
            cls.block = ("reserved", reserved_by)
        elif held is not None and all(n.held is not None for n in cls.eligible):
            cls.block = ("held", held)
        else:
            cls.block = ("no-room", None)
    return best, fitting

"""Per-node state of the policy: free resources now and an availability timeline.

The timeline is built from the planned ends of the jobs running on the node (start plus
time limit) and the reservations made for blocked jobs. Availability only grows between
reservation starts, so a window is checked at its start and at every reservation start
inside it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Container, Iterable, Mapping, Sequence

from simfarm.common.capacity import Capacity
from simfarm.workers.dispatch.data import Key

INF = math.inf
#: release times, then cumulative free cores, memory, disk, slots and licences after each
Profile = tuple[list[float], list[int], list[int], list[int], list[int], dict[str, list[int]]]


NO_LICENSES: Mapping[str, int] = {}


class Run:
    """A job holding resources on a node (and licences of the farm's pools) until its
    planned ``end``."""

    __slots__ = ("bucket", "c", "d", "end", "job_id", "key", "lic", "m", "node", "pool")

    def __init__(
        self, job_id: str, node: NodeState, c: int, m: int, d: int,
        lic: Mapping[str, int], end: float, key: Key, pool: Mapping[str, int] = NO_LICENSES,
        bucket: object = None,
    ) -> None:
        self.job_id = job_id
        self.node = node
        self.c, self.m, self.d, self.lic = c, m, d, lic
        self.end = end
        self.key = key
        self.pool = pool
        #: who pays (a :class:`~.shares.Bucket`)
        self.bucket = bucket

    @property
    def units(self) -> int:
        """What it is charged per second: cores plus licences of the farm's pools."""
        return self.c + sum(self.pool.values())


class Hold:
    """A reservation: resources promised to the job with ``key`` in ``[start, end)`` on
    a node, and the licences of the farm's pools it needs (``pool``)."""

    __slots__ = ("c", "d", "end", "job_id", "key", "lic", "m", "node", "owner", "pool",
                 "start")

    def __init__(
        self, owner: object, job_id: str, key: Key, node: NodeState, start: float,
        end: float, c: int, m: int, d: int, lic: Mapping[str, int],
        pool: Mapping[str, int] = NO_LICENSES,
    ) -> None:
        self.owner = owner
        self.job_id = job_id
        self.key = key
        self.node = node
        self.start, self.end = start, end
        self.c, self.m, self.d, self.lic = c, m, d, lic
        self.pool = pool


class NodeState:
    """One node: capacity, what is free now, running jobs and reservations."""

    __slots__ = (
        "_bounds", "_prof", "alive", "cap", "free_c", "free_d", "free_lic", "free_m", "free_s",
        "held", "holds", "index", "name", "runs", "watch",
    )

    def __init__(self, cap: Capacity, index: int, held: str | None = None) -> None:
        self.name = cap.name
        self.index = index
        self.cap = cap
        self.held = held
        self.alive = True
        self.runs: dict[str, Run] = {}
        self.holds: list[Hold] = []
        self.free_c, self.free_m, self.free_d = cap.cores, cap.memory_mb, cap.disk_mb
        self.free_s = cap.max_jobs
        self.free_lic: dict[str, int] = dict(cap.licenses)
        self._prof: Profile | None = None
        #: :meth:`cores_free_from` by core count, until the running jobs change
        self._bounds: dict[int, float] = {}
        #: told when the running jobs change (:meth:`~.bounds.BoundIndex.note`), if set
        self.watch: Callable[[NodeState], None] | None = None

    # ------------------------------------------------------------------ now
    def add_run(self, run: Run) -> None:
        """Account for a job that now holds resources here."""
        self.runs[run.job_id] = run
        self.free_c -= run.c
        self.free_m -= run.m
        self.free_d -= run.d
        self.free_s -= 1
        for name, count in run.lic.items():
            self.free_lic[name] = self.free_lic.get(name, 0) - count
        self._prof = None
        self._bounds = {}
        if self.watch is not None:
            self.watch(self)

    def remove_run(self, job_id: str) -> Run | None:
        """Give back a job's resources; returns the run, or None if unknown here."""
        run = self.runs.pop(job_id, None)
        if run is None:
            return None
        self.free_c += run.c
        self.free_m += run.m
        self.free_d += run.d
        self.free_s += 1
        for name, count in run.lic.items():
            self.free_lic[name] = self.free_lic.get(name, 0) + count
        self._prof = None
        self._bounds = {}
        if self.watch is not None:
            self.watch(self)
        return run

    def set_end(self, run: Run, end: float) -> None:
        """Move a running job's planned end (it outlived its estimate)."""
        run.end = end
        self._prof = None
        self._bounds = {}
        if self.watch is not None:
            self.watch(self)

    def fits_now(self, c: int, m: int, d: int, lic: Mapping[str, int]) -> bool:
        """Whether the request fits what is free right now (ignoring reservations)."""
        if c > self.free_c or m > self.free_m or d > self.free_d or self.free_s < 1:
            return False
        if lic:
            free = self.free_lic
            return all(free.get(k, 0) >= n for k, n in lic.items())
        return True

    # ------------------------------------------------------------------ timeline
    def _profile(self) -> Profile:
        """Release times and cumulative free cores/memory/disk/slots/licences after each."""
        prof = self._prof
        if prof is None:
            runs = sorted(self.runs.values(), key=lambda r: r.end)
            ends = [r.end for r in runs]
            cc, cm, cd, cs = [self.free_c], [self.free_m], [self.free_d], [self.free_s]
            cl = {name: [free] for name, free in self.free_lic.items()}
            for r in runs:
                cc.append(cc[-1] + r.c)
                cm.append(cm[-1] + r.m)
                cd.append(cd[-1] + r.d)
                cs.append(cs[-1] + 1)
                for name, series in cl.items():
                    series.append(series[-1] + r.lic.get(name, 0))
            prof = self._prof = (ends, cc, cm, cd, cs, cl)
        return prof

    def fits_window(
        self, c: int, m: int, d: int, lic: Mapping[str, int], start: float, end: float,
        holds: Sequence[Hold],
    ) -> bool:
        """Whether the request fits at every moment of ``[start, end)`` given ``holds``."""
        ends, cc, cm, cd, cs, cl = self._profile()
        points = [start]
        points += [h.start for h in holds if start < h.start < end]
        for t in points:
            i = bisect_right(ends, t)
            ac, am, ad, as_ = cc[i], cm[i], cd[i], cs[i]
            active = [h for h in holds if h.start <= t < h.end]
            for h in active:
                ac -= h.c
                am -= h.m
                ad -= h.d
                as_ -= 1
            if ac < c or am < m or ad < d or as_ < 1:
                return False
            for name, series in cl.items():
                need = lic.get(name, 0) + sum(h.lic.get(name, 0) for h in active)
                if need and series[i] < need:
                    return False
            if lic and any(name not in cl for name in lic):
                return False
        return True

    def cores_free_from(self, c: int) -> float:
        """When ``c`` cores will be free, from the planned ends alone (no reservations):
        a cheap lower bound of :meth:`earliest`; ``INF`` if the node is too small. Kept per
        core count until the running jobs change."""
        bound = self._bounds.get(c)
        if bound is None:
            prof = self._prof or self._profile()
            ends = prof[0]
            i = bisect_left(prof[1], c)
            bound = INF if i > len(ends) else -INF if i == 0 else ends[i - 1]
            self._bounds[c] = bound
        return bound

    def earliest(
        self, c: int, m: int, d: int, lic: Mapping[str, int], length: float, now: float,
        holds: Sequence[Hold], cutoff: float = INF,
    ) -> float:
        """Earliest ``t >= now`` with room for the request during ``[t, t + length)``.

        Returns ``INF`` when the node has no room before ``cutoff`` (given the planned
        ends of its running jobs and ``holds``).
        """
        ends, cc, cm, cd, cs, cl = self._profile()
        # lower bound: when enough is free ignoring reservations (free space only grows)
        i = max(bisect_left(cc, c), bisect_left(cm, m), bisect_left(cd, d), bisect_left(cs, 1))
        for name, count in lic.items():
            series = cl.get(name)
            i = max(i, bisect_left(series, count) if series is not None else len(ends) + 1)
        if i > len(ends):
            return INF
        lower = now if i == 0 else max(now, ends[i - 1])
        if lower >= cutoff:
            return INF
        if not holds:
            return lower
        times = {lower}
        times.update(e for e in ends if e > lower)
        times.update(h.end for h in holds if lower < h.end < INF)
        for t in sorted(times):
            if t >= cutoff:
                break
            if self.fits_window(c, m, d, lic, t, t + length, holds):
                return t
        return INF


def earliest_node(
    nodes: Iterable[NodeState], c: int, m: int, d: int, lic: Mapping[str, int],
    length: float, now: float, key: Key,
) -> tuple[NodeState | None, float]:
    """The node where a request ranked ``key`` can start earliest, around the
    reservations ranked ahead of it, and that time (``(None, INF)`` if nowhere); the
    first node wins a tie.

    This runs for every new reservation over every eligible node, so the nodes are
    tried in the order of a cheap lower bound of their time (when enough cores are free,
    from planned ends alone), and the search stops at the first node whose bound cannot
    beat the best found: the answer is the same as trying every node in turn.
    """
    # cores_free_from's cache read inline: this runs over every eligible node
    ranked = [
        (bound, pos, node) for pos, node in enumerate(nodes)
        if node.held is None and (bound := (
            cached if (cached := node._bounds.get(c)) is not None
            else node.cores_free_from(c))) < INF
    ]
    ranked.sort()  # by bound, then position (unique: nodes are never compared)
    return best_start(ranked, c, m, d, lic, length, now, key)


def best_start(
    ranked: Iterable[tuple[float, int, NodeState]], c: int, m: int, d: int,
    lic: Mapping[str, int], length: float, now: float, key: Key,
    usable: Container[int] | None = None,
) -> tuple[NodeState | None, float]:
    """The node of ``ranked`` — (bound, position, node), by bound then position — where
    the request can start earliest, and that time; the lowest position wins a tie. The
    walk stops at the first node whose bound cannot beat the best found. ``usable``: the
    positions that may be used, held nodes (`NodeState.held`) left out too (None: every
    node; the caller left those out)."""
    best: NodeState | None = None
    best_t = INF
    best_pos = -1
    for bound, pos, node in ranked:
        if bound > best_t or (bound == best_t and pos > best_pos):
            break  # it and every node after it start no earlier, or lose the tie
        if usable is not None and (pos not in usable or node.held is not None):
            continue
        holds = node.holds
        before = [h for h in holds if h.key < key] if holds else []
        # a node listed before the best wins a tie: let it reach the best time itself
        cutoff = best_t if pos > best_pos or best_t == INF else math.nextafter(best_t, INF)
        t = node.earliest(c, m, d, lic, length, now, before, cutoff)
        if t < best_t or (t == best_t < INF and pos < best_pos):
            best, best_t, best_pos = node, t, pos
    return best, best_t

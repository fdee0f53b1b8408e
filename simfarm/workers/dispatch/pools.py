"""The farm's floating licence pools as the placement policy sees them.

A pool is counted once for the whole farm, beside the cores of each node: what it may
hand out now (its limit), what the running jobs hold until their planned ends, and what
is reserved for blocked jobs. A job starts only if its pool licences are free now and,
with reservations, taking them until its planned end leaves every better-ranked
reservation of the pool intact — the same rule as for a node's cores — so small jobs
that keep taking licences cannot starve a job that waits for many.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from simfarm.workers.dispatch.nodes import INF, Hold, Run


@dataclass(frozen=True, slots=True)
class PoolView:
    """One pool as the dispatcher is told about it."""

    name: str
    limit: int
    outside: int = 0
    server: str | None = None


class Pools:
    """Every licence pool: limits, holdings of running jobs, reservations."""

    def __init__(self) -> None:
        self.views: dict[str, PoolView] = {}
        self.used: dict[str, int] = {}
        self.runs: dict[str, Run] = {}
        #: reservations that include pool licences (the same objects nodes hold)
        self.holds: list[Hold] = []
        self._prof: tuple[list[float], dict[str, list[int]]] | None = None

    def __contains__(self, name: object) -> bool:
        return name in self.views

    def set(self, views: Iterable[PoolView]) -> set[str]:
        """Tell the pools' limits; returns the names whose limit grew (they loosened)."""
        loosened: set[str] = set()
        fresh = {v.name: v for v in views}
        for name, view in fresh.items():
            old = self.views.get(name)
            if old is None or view.limit > old.limit:
                loosened.add(name)
        self.views = fresh
        self._prof = None
        return loosened

    def limit(self, name: str) -> int:
        """What the pool may hand out in all (0 for a pool the dispatcher was not told)."""
        view = self.views.get(name)
        return view.limit if view is not None else 0

    def free(self, name: str) -> int:
        """What the pool has free now."""
        return self.limit(name) - self.used.get(name, 0)

    def fits_now(self, need: Mapping[str, int]) -> str | None:
        """None if ``need`` is free now, else the first pool that lacks it."""
        for name, count in need.items():
            if self.free(name) < count:
                return name
        return None

    def add_run(self, run: Run) -> None:
        """A job that holds pool licences started (or was found running)."""
        if not run.pool:
            return
        self.runs[run.job_id] = run
        for name, count in run.pool.items():
            self.used[name] = self.used.get(name, 0) + count
        self._prof = None

    def remove_run(self, job_id: str) -> Run | None:
        """A job that held pool licences ended: they are free again."""
        run = self.runs.pop(job_id, None)
        if run is None:
            return None
        for name, count in run.pool.items():
            self.used[name] = self.used.get(name, 0) - count
        self._prof = None
        return run

    def moved(self) -> None:
        """A running job's planned end moved (it outlived its estimate)."""
        self._prof = None

    def held(self) -> dict[str, int]:
        """Licences the running jobs the policy knows hold, per pool."""
        return {k: n for k, n in self.used.items() if n}

    # ------------------------------------------------------------------ timeline
    def _profile(self) -> tuple[list[float], dict[str, list[int]]]:
        """The planned ends of the runs holding pool licences, and the free count of
        each pool after each end."""
        prof = self._prof
        if prof is None:
            runs = sorted(self.runs.values(), key=lambda r: r.end)
            ends = [r.end for r in runs]
            series = {name: [self.free(name)] for name in self.views}
            for r in runs:
                for name, free in series.items():
                    free.append(free[-1] + r.pool.get(name, 0))
            prof = self._prof = (ends, series)
        return prof

    def fits_window(self, need: Mapping[str, int], start: float, end: float,
                    holds: Sequence[Hold]) -> bool:
        """Whether ``need`` stays free during ``[start, end)`` beside ``holds``."""
        if not need:
            return True
        ends, series = self._profile()
        points = [start] + [h.start for h in holds if start < h.start < end]
        for t in points:
            i = bisect_right(ends, t)
            active = [h for h in holds if h.start <= t < h.end]
            for name, count in need.items():
                free = series.get(name)
                if free is None:
                    return False
                if free[i] - sum(h.pool.get(name, 0) for h in active) < count:
                    return False
        return True

    def earliest(self, need: Mapping[str, int], length: float, now: float,
                 holds: Sequence[Hold]) -> float:
        """Earliest ``t >= now`` with ``need`` free during ``[t, t + length)`` beside
        ``holds`` (from the planned ends of the runs); ``INF`` if never (the pool is too
        small now, e.g. while licences are in use outside the farm)."""
        if not need:
            return now
        ends = self._profile()[0]
        times = sorted({now, *(e for e in ends if e > now),
                        *(h.end for h in holds if now < h.end < INF)})
        for t in times:
            if self.fits_window(need, t, t + length, holds):
                return t
        return INF

    def before(self, key: tuple[float, int]) -> list[Hold]:
        """The pool reservations ranked ahead of ``key``."""
        return [h for h in self.holds if h.key < key]

    def shortfall(self, name: str) -> tuple[int, int, str | None]:
        """``(free now, in use outside the farm, server)`` of a pool, for reasons."""
        view = self.views.get(name)
        return (max(0, self.free(name)), view.outside if view else 0,
                view.server if view else None)

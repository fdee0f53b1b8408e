"""The farm's time series in Redis (see :mod:`simfarm.common.farm_series`), and the few
farm-wide counts a sample is made of.

Each series of each tier is one sorted set of ``"<t>:<value>"`` members scored by the
point's time ``t``; every write trims what is older than the tier keeps, so a series
holds at most ``keep`` points whatever the number of jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, cast

import redis

from simfarm.common.store.keys import Keys

Tier = Literal["fine", "coarse"]
# Job ranks in the state sets: (10 - priority) * RANK_STEP + submit sequence; gated
# pending jobs are ranked GATED_BAND higher (see jobs.py and lua/gate.lua).
_RANK_STEP = 1_000_000_000_000
_GATED_BAND = 100_000_000_000_000


class FarmStatsStore:
    """Reads and writes the farm's time series."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    # ------------------------------------------------------------------ series
    def write(self, tier: Tier, ts: float, values: Mapping[str, float | None], *,
              step: float, keep: int) -> None:
        """Record one point per series at ``ts`` (replacing a point already there; a
        ``None`` value records nothing) and trim every series of the tier to ``keep``
        points of ``step`` seconds."""
        k = self.keys
        oldest = ts - keep * step
        known = self.names()
        pipe = self.connection.pipeline(transaction=False)
        written = [name for name, value in values.items() if value is not None]
        for name in written:
            key = k.stats_series(tier, name)
            pipe.zremrangebyscore(key, ts, ts)
            pipe.zadd(key, {f"{ts!r}:{values[name]!r}": ts})
        if written:
            pipe.sadd(k.stats_names, *written)
        trimmed = sorted(known | set(written))
        for name in trimmed:
            pipe.zremrangebyscore(k.stats_series(tier, name), "-inf", oldest)
        for name in trimmed:
            pipe.zcard(k.stats_series("fine", name))
            pipe.zcard(k.stats_series("coarse", name))
        pipe.hset(k.stats_last, tier, repr(ts))
        results = pipe.execute()
        sizes = results[len(results) - 1 - 2 * len(trimmed):-1]
        empty = [name for i, name in enumerate(trimmed)
                 if not sizes[2 * i] and not sizes[2 * i + 1]]
        if empty:  # a node that left the farm long ago: forget its series
            self.connection.srem(k.stats_names, *empty)

    def read(self, tier: Tier, name: str, since: float, until: float) -> list[tuple[float, float]]:
        """The series' points with ``since <= t <= until``, oldest first."""
        members = self.connection.zrangebyscore(self.keys.stats_series(tier, name), since, until)
        out = []
        for raw in cast(list[bytes], members):
            ts, _, value = raw.decode().partition(":")
            out.append((float(ts), float(value)))
        return out

    def names(self) -> set[str]:
        """Every series recorded (and not yet trimmed away)."""
        return {n.decode() for n in cast(set[bytes], self.connection.smembers(
            self.keys.stats_names))}

    def last(self, tier: Tier) -> float | None:
        """Time of the tier's latest point, None before the first."""
        raw = cast(bytes | None, self.connection.hget(self.keys.stats_last, tier))
        return float(raw) if raw else None

    # ------------------------------------------------------------------ sample inputs
    def count_by_priority(self, state: str) -> dict[int, int]:
        """Jobs in ``state`` at each priority 0-10 (gated pending jobs included): 11 or
        22 O(log n) counts."""
        key = self.keys.state(state)
        bands = (0, _GATED_BAND) if state == "pending" else (0,)
        pipe = self.connection.pipeline(transaction=False)
        for band in bands:
            for priority in range(11):
                low = band + (10 - priority) * _RANK_STEP
                pipe.zcount(key, low, f"({low + _RANK_STEP}")
        counts = [int(n) for n in pipe.execute()]
        return {p: sum(counts[b * 11 + p] for b in range(len(bands))) for p in range(11)}

    def finished_between(self, start: float, end: float, limit: int = 100_000) -> list[str]:
        """Ids of jobs that reached a final state with ``start < finished_at <= end``."""
        ids = self.connection.zrangebyscore(self.keys.finished, f"({start!r}", end,
                                            start=0, num=limit)
        return [i.decode() for i in cast(list[bytes], ids)]

    def job_times(self, ids: Sequence[str]) -> list[tuple[str | None, float | None, float | None]]:
        """``(state, created_at, started_at)`` of each job (Nones for a vanished job)."""
        pipe = self.connection.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.keys.job(job_id), ["state", "created_at", "started_at"])
        out: list[tuple[str | None, float | None, float | None]] = []
        for state, created, started in cast(Iterable[list[bytes | None]], pipe.execute()):
            out.append((state.decode() if state else None,
                        float(created) if created else None,
                        float(started) if started else None))
        return out

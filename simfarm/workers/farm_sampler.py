"""Records the farm's time series: one sample per bucket, written by the dispatcher
leader only (its own thread, so a slow sample never delays a dispatch round).

At each bucket boundary it writes the gauges (cores, queue) and the bucket's counts
(jobs finished and failed, waiting-time percentiles); buckets missed while no leader
ran get their counts afterwards (from the finished-jobs index), up to
:data:`BACKFILL_BUCKETS`. Once an hour of fine points is complete it is combined into
one coarse point (gauges averaged, counts summed, percentiles' maximum).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from simfarm.common.farm_sampling import bucket_counts, gauges
from simfarm.common.farm_series import METRICS, combine, parse_series_name
from simfarm.common.store.farm_stats import FarmStatsStore
from simfarm.workers.context import WorkerContext
from simfarm.workers.leader_thread import LeaderThread

log = logging.getLogger(__name__)
BACKFILL_BUCKETS = 60


class FarmSampler(LeaderThread):
    """Writes the fine and coarse tiers while ``is_leader()`` holds."""

    failure = "sample failed"

    def __init__(self, ctx: WorkerContext, is_leader: Callable[[], bool]) -> None:
        super().__init__("farm-sampler", ctx.node_name, is_leader,
                         min(1.0, ctx.settings.stats_bucket_s / 4))
        self.ctx = ctx
        self.stats = FarmStatsStore(ctx.redis, ctx.settings.key_prefix)
        settings = ctx.settings
        self.step = settings.stats_bucket_s
        self.keep = settings.stats_buckets
        self.coarse_step = max(settings.stats_coarse_bucket_s, self.step)
        self.coarse_keep = settings.stats_coarse_buckets
        self._next = 0.0

    def lead(self, now: float) -> None:
        self.tick(now)

    def not_leading(self) -> None:
        self._next = 0.0  # a new term starts from what Redis says

    def tick(self, now: float) -> bool:
        """Write the samples due at ``now``; True when something was written."""
        if now < self._next:
            return False
        end = math.floor(now / self.step) * self.step
        last = self.stats.last("fine")
        if last is not None and last >= end:
            self._next = last + self.step
            return False
        first = end if last is None else max(last + self.step, end - BACKFILL_BUCKETS * self.step)
        bucket = first
        while bucket < end:  # missed buckets: their counts only (gauges are not known)
            self._write(bucket, bucket_counts(self.ctx.jobs, self.stats, bucket - self.step,
                                              bucket))
            bucket += self.step
        values: dict[str, float | None] = dict(gauges(self.ctx.jobs, self.ctx.nodes, self.stats))
        values.update(bucket_counts(self.ctx.jobs, self.stats, end - self.step, end))
        self._write(end, values)
        self._coarsen(end)
        self._next = end + self.step
        return True

    def _write(self, ts: float, values: dict[str, float | None]) -> None:
        self.stats.write("fine", ts, values, step=self.step, keep=self.keep)

    def _coarsen(self, end: float) -> None:
        hour = math.floor(end / self.coarse_step) * self.coarse_step
        last = self.stats.last("coarse")
        if last is not None and last >= hour:
            return
        values: dict[str, float | None] = {}
        for name in self.stats.names():
            metric, _ = parse_series_name(name)
            definition = METRICS.get(metric)
            # The fine points of the hour that ends at ``hour``: (hour - coarse_step, hour].
            points = self.stats.read("fine", name, hour - self.coarse_step + self.step / 2, hour)
            if definition is not None and points:
                values[name] = combine([v for _, v in points], definition.aggregate)
        self.stats.write("coarse", hour, values, step=self.coarse_step, keep=self.coarse_keep)


"""``GET /api/v1/stats/series``: the farm over time (cores, queue, throughput, waiting
time), from the series the dispatcher leader records (docs/monitoring.md)."""

from __future__ import annotations

import math
import threading
import time

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simfarm.common.farm_sampling import gauges
from simfarm.common.farm_series import (
    METRICS,
    parse_series_name,
    resample,
    series_name,
)
from simfarm.common.settings import Settings
from simfarm.common.store.farm_stats import FarmStatsStore
from simfarm.gateway.errors import field_error
from simfarm.gateway.openapi import document
from simfarm.gateway.services import services

bp = Blueprint("stats", __name__, url_prefix="/api/v1")
MAX_POINTS = 20_000  # per series and answer
LIVE_TTL_S = 1.0  # the live gauges are read at most once a second per gateway process
AUTO_POINTS = 1_000  # without step: about this many points over the span
DEFAULT_SPAN_S = 3600.0


class SeriesQuery(BaseModel):
    """Query parameters of ``GET /api/v1/stats/series``."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="one or more metric names, comma-separated: "
                        + ", ".join(f"`{m}`" for m in METRICS))
    since: float | None = Field(default=None, description=(
        "start, epoch seconds; negative: that many seconds before now (default -3600)"))
    until: float | None = Field(default=None, description="end, epoch seconds (default now)")
    step: float | None = Field(default=None, gt=0, description=(
        "seconds per point (at least the recording bucket; default: about 1,000 points)"))
    node: str | None = Field(default=None, max_length=200, description=(
        "for per-node metrics (`cores_busy`, `cores_free`): this node, or `*` for each node"))
    priority: str | None = Field(default=None, pattern=r"^(\*|[0-9]|10)$", description=(
        "for per-priority metrics (`jobs_pending`, `jobs_running`): 0-10, or `*` for each"))
    feature: str | None = Field(default=None, max_length=64, description=(
        "for per-pool metrics (`licenses_in_use`, `licenses_outside`): this licence pool, "
        "or `*` for each (the default: they have no farm total)"))

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        names = [m.strip() for m in value.split(",") if m.strip()]
        unknown = [m for m in names if m not in METRICS]
        if not names or unknown:
            raise ValueError(f"unknown metric {', '.join(unknown) or '(none)'}; "
                             f"known: {', '.join(METRICS)}")
        return ",".join(dict.fromkeys(names))


class SeriesOut(BaseModel):
    """One series: a metric for the farm, one node or one priority."""

    metric: str
    labels: dict[str, str] = Field(description="`{}` for the farm's total")
    unit: str
    aggregate: str = Field(description="how points were combined into the step: "
                           "`mean` (gauges), `sum` (counts), `max` (percentiles)")
    points: list[tuple[float, float]] = Field(description="`[t, value]`, oldest first")
    current: tuple[float, float] | None = Field(
        default=None, description="gauges: the value now, read for this answer")


class SeriesListOut(BaseModel):
    """The series asked for, over ``since``-``until`` at ``step`` seconds per point."""

    since: float
    until: float
    step: float
    bucket_s: float = Field(description="the recording bucket")
    series: list[SeriesOut]


def _names(stats: FarmStatsStore, metric: str, query: SeriesQuery) -> list[str]:
    label = METRICS[metric].label
    wanted = {"node": query.node, "priority": query.priority,
              "feature": query.feature or "*"}.get(label or "")
    if label is None or wanted is None:
        return [metric]
    if wanted != "*":
        return [series_name(metric, label, wanted)]
    found = [n for n in stats.names() if parse_series_name(n)[0] == metric and "@" in n]
    key = (lambda n: int(parse_series_name(n)[1][label])) if label == "priority" else None
    return sorted(found, key=key)


class LiveGauges:
    """The gauges now, shared by the requests of the same second (a dashboard asks
    for several charts at once, and every open overview page redraws on job changes).

    One per app, made by :func:`install_stats` when the app is built: under gevent
    that is after the worker patched ``threading``, so the lock is a greenlet lock (a
    module-level lock made before the patch blocked the whole worker process while one
    request held it across a Redis call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = -math.inf
        self._values: dict[str, float] = {}

    def read(self, stats: FarmStatsStore) -> dict[str, float]:
        svc = services()
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= LIVE_TTL_S:
                self._values = gauges(svc.jobs, svc.nodes, stats)
                self._read_at = now
            return self._values


def install_stats(app: Flask) -> None:
    """Register the series routes and the app's live-gauge cache."""
    app.extensions["simfarm.live_gauges"] = LiveGauges()
    app.register_blueprint(bp)


def live_gauges(stats: FarmStatsStore) -> dict[str, float]:
    """The gauges now (see :class:`LiveGauges`)."""
    cache: LiveGauges = current_app.extensions["simfarm.live_gauges"]
    return cache.read(stats)


def _points(stats: FarmStatsStore, settings: Settings, name: str, since: float, until: float,
            step: float, now: float) -> list[tuple[float, float]]:
    fine_start = now - settings.stats_buckets * settings.stats_bucket_s
    points: list[tuple[float, float]] = []
    if since < fine_start:  # older than the fine tier keeps: the hourly points
        points += stats.read("coarse", name, since, min(until, fine_start - 1e-3))
    points += stats.read("fine", name, max(since, fine_start), until)
    if step > settings.stats_bucket_s:
        points = resample(points, step, METRICS[parse_series_name(name)[0]].aggregate)
    return points


@bp.get("/stats/series")
@document(tags=["service"], query=SeriesQuery, responses={200: SeriesListOut}, errors=(422,))
def stats_series() -> Response:
    """The farm over time: cores busy and free (per node and in total), jobs pending and
    running (per priority and in total), jobs finished and failed per step, waiting time
    p50/p95, licences of each floating pool held by farm jobs and in use outside. One
    point per recording bucket (a minute by default) for a week, hourly beyond; ``step``
    combines them (gauges averaged, counts summed). Gauges also carry their ``current``
    value."""
    query = SeriesQuery.model_validate(request.args.to_dict())
    svc = services()
    settings = svc.settings
    now = time.time()
    until = now if query.until is None else query.until
    since = (until - DEFAULT_SPAN_S if query.since is None
             else now + query.since if query.since < 0 else query.since)
    if since >= until:
        raise field_error("since", "must be before until")
    bucket = settings.stats_bucket_s
    span = until - since
    step = query.step or max(bucket, math.ceil(span / AUTO_POINTS / bucket) * bucket)
    if step < bucket:
        raise field_error("step", f"must be at least the recording bucket ({bucket:g} s)")
    if span / step > MAX_POINTS:
        raise field_error("step", f"too small for this span: at most {MAX_POINTS} points")
    stats = FarmStatsStore(svc.redis, settings.key_prefix)
    metrics = query.metric.split(",")
    live = (live_gauges(stats)
            if any(METRICS[m].kind == "gauge" for m in metrics) and until >= now - bucket
            else {})
    out = []
    for metric in metrics:
        definition = METRICS[metric]
        for name in _names(stats, metric, query):
            value = live.get(name)
            out.append(SeriesOut(
                metric=metric, labels=parse_series_name(name)[1], unit=definition.unit,
                aggregate=definition.aggregate,
                points=_points(stats, settings, name, since, until, step, now),
                current=(now, value) if value is not None else None))
    body = SeriesListOut(since=since, until=until, step=step, bucket_s=bucket, series=out)
    return jsonify(body.model_dump(mode="json"))


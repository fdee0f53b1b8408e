"""Usage accounting: what each attempt of a job used, and reports over per-day roll-ups.

The transition that ends an attempt records it (``lua/lib.lua`` ``record_usage``, in the
same atomic step): the job keeps one :class:`AttemptUsage` per attempt, and the day
roll-ups (:class:`~simfarm.common.store.usage.UsageStore`) add it by user, account and
node for each UTC day. A report reads one roll-up per day in its range, so it costs the
same over a hundred finished jobs as over a million. This module holds the models and
the pure arithmetic: day numbers, the report's time range, rows combined into buckets.
docs/operations.md#usage-accounting explains what is counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

DAY_S = 86_400
#: how a report groups rows (``GET /api/v1/usage?by=``)
DIMENSIONS = ("user", "account", "node")
#: how a report splits time (``bucket=``): one row per day, per month, or the whole range
BUCKETS = ("day", "month", "total")
#: how an attempt ended
ENDINGS = ("completed", "failed", "cancelled", "timeout", "lost", "requeued")
Dimension = Literal["user", "account", "node"]
Bucket = Literal["day", "month", "total"]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": DAY_S, "w": 7 * DAY_S}


class AttemptUsage(BaseModel):
    """What one attempt of a job used, recorded when it ended."""

    attempt: int = Field(description="the attempt's number (1 = first run)")
    user: str = Field(description="the job's owner ('-': none)")
    account: str = Field(description="the account it charged ('-': none)")
    node: str = Field(description="the node it was placed on")
    cores: int = Field(description="cores it reserved")
    licenses: dict[str, int] = Field(default_factory=dict,
                                     description="licence tokens of its node it held")
    pool_licenses: dict[str, int] = Field(
        default_factory=dict, description="floating licences of the farm's pools it held")
    scheduled_at: float = Field(description="when it was placed (epoch seconds)")
    started_at: float | None = Field(default=None,
                                     description="when it started running (None: never did)")
    ended_at: float = Field(description="when it ended (epoch seconds)")
    wall_s: float = Field(description="seconds it ran: ended_at - started_at, else 0")
    core_s: float = Field(description="core-seconds: cores x wall_s")
    wait_s: float = Field(description="seconds from entering the queue (submit, release or "
                          "requeue) to starting (or to being placed, if it never ran)")
    ended: str = Field(description="how it ended: " + ", ".join(ENDINGS))


class UsageRow(BaseModel):
    """One row of a usage report: a user, account or node over one bucket of time."""

    name: str = Field(description="the user, account or node ('-': none)")
    day: str | None = Field(default=None, description="first UTC day of the bucket "
                            "(YYYY-MM-DD); None for bucket=total")
    attempts: int = Field(description="attempts that ended in the bucket")
    core_seconds: float = Field(description="core-seconds used in the bucket")
    core_hours: float = Field(description="core_seconds / 3600")
    wall_seconds: float = Field(description="run time of the attempts, summed")
    wait_seconds: float = Field(description="waiting time of the attempts that ended, summed")
    mean_wait_s: float = Field(description="wait_seconds / attempts (0 without attempts)")
    ended: dict[str, int] = Field(default_factory=dict,
                                  description="attempts by how they ended (completed...)")
    license_seconds: dict[str, float] = Field(
        default_factory=dict, description="licence-seconds of node licence tokens, by name")
    pool_license_seconds: dict[str, float] = Field(
        default_factory=dict, description="licence-seconds of the farm's pools, by pool")


class UsageReport(BaseModel):
    """``GET /api/v1/usage``: the rows of one report, and the days it covers."""

    by: Dimension
    bucket: Bucket
    since: str = Field(description="first UTC day covered (YYYY-MM-DD)")
    until: str = Field(description="last UTC day covered (YYYY-MM-DD)")
    scope: str = Field(description="'all' (an admin) or the user whose usage it is")
    rows: list[UsageRow] = Field(description="by bucket, then by core-seconds, largest first")
    total: UsageRow = Field(description="all rows together (name 'total')")


class DayRow(NamedTuple):
    """One row of one day's roll-up as stored: metric -> amount (``attempts``,
    ``core_s``, ``wall_s``, ``wait_s``, ``end/<how>``, ``lic/<name>``, ``pool/<name>``)."""

    day: int
    name: str
    metrics: Mapping[str, float]


def day_of(t: float) -> int:
    """The UTC day number (days since 1970-01-01) of epoch time ``t``."""
    return int(t // DAY_S)


def day_date(day: int) -> date:
    """The calendar date of a day number."""
    return date(1970, 1, 1) + timedelta(days=day)


def parse_when(value: str, now: float) -> float:
    """An instant of a report's range, as the API and the CLI take it: ``30d``, ``12h``,
    ``2w`` (that long before now), a negative number (seconds before now), epoch
    seconds, or an ISO 8601 date or date-time (UTC unless it says otherwise).
    ValueError with the reason otherwise."""
    text = value.strip()
    ago = _AGO.match(text)
    if ago:
        return now - float(ago.group(1)) * _UNIT_S[ago.group(2)]
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return now + number if number < 0 else number
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be like 30d, 12h, 2w, epoch seconds or an ISO date "
                         "(2026-11-01)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _bucket_start(day: int, bucket: Bucket) -> int | None:
    if bucket == "total":
        return None
    if bucket == "month":
        d = day_date(day)
        return (date(d.year, d.month, 1) - date(1970, 1, 1)).days
    return day


def _row(name: str, start: int | None, metrics: Mapping[str, float]) -> UsageRow:
    attempts = int(metrics.get("attempts", 0))
    core = metrics.get("core_s", 0.0)
    wait = metrics.get("wait_s", 0.0)

    def prefixed(prefix: str) -> dict[str, float]:
        return {k[len(prefix):]: v for k, v in sorted(metrics.items()) if k.startswith(prefix)}

    return UsageRow(
        name=name, day=None if start is None else day_date(start).isoformat(),
        attempts=attempts, core_seconds=core, core_hours=core / 3600,
        wall_seconds=metrics.get("wall_s", 0.0), wait_seconds=wait,
        mean_wait_s=wait / attempts if attempts else 0.0,
        ended={k: int(v) for k, v in prefixed("end/").items()},
        license_seconds=prefixed("lic/"), pool_license_seconds=prefixed("pool/"))


def _add(into: dict[str, float], metrics: Mapping[str, float]) -> None:
    for metric, value in metrics.items():
        into[metric] = into.get(metric, 0.0) + value


def combine(rows: Iterable[DayRow], bucket: Bucket) -> tuple[list[UsageRow], UsageRow]:
    """Day rows combined into one row per name and bucket (oldest bucket first, then
    most core-seconds first), and the total of them all."""
    buckets: dict[tuple[int | None, str], dict[str, float]] = {}
    total: dict[str, float] = {}
    for row in rows:
        _add(buckets.setdefault((_bucket_start(row.day, bucket), row.name), {}), row.metrics)
        _add(total, row.metrics)
    out = [_row(name, start, metrics) for (start, name), metrics in buckets.items()]
    out.sort(key=lambda r: (r.day or "", -r.core_seconds, r.name))
    return out, _row("total", None, total)

"""Small formatting helpers for the dashboard's templates."""

from __future__ import annotations

import time
from datetime import datetime

from simfarm.common.models import Job


def duration(seconds: float | None) -> str:
    """``3d 4h``, ``2h 05m``, ``4m 10s``, ``12s``; ``—`` for None."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def age(job: Job, now: float | None = None) -> str:
    """Time since the job was submitted."""
    return duration((now or time.time()) - job.created_at.timestamp())


def runtime(job: Job, now: float | None = None) -> str:
    """Time the job has been running (until it finished), ``—`` before it started."""
    if job.started_at is None:
        return "—"
    end = job.finished_at.timestamp() if job.finished_at else (now or time.time())
    return duration(end - job.started_at.timestamp())


def clock(value: datetime | float | None) -> str:
    """Local ``YYYY-mm-dd HH:MM:SS``."""
    if value is None:
        return "—"
    ts = value.timestamp() if isinstance(value, datetime) else value
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def mib(value: int) -> str:
    """Megabytes as ``12.0 GiB`` or ``512 MiB``."""
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value} MiB"

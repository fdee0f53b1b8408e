"""Redis calls from a job's supervising loop, which must keep going while Redis is away.

While Redis cannot be reached the job keeps running and its loop keeps checking its
deadlines. A partition that drops packets silently makes every call block for a socket
timeout, so while Redis is unreachable only one call per interval probes it; the others
are skipped (the caller keeps what it could not send).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

log = logging.getLogger(__name__)
T = TypeVar("T")


class RedisGuard:
    """Runs Redis calls for one job, noting when Redis is unreachable."""

    def __init__(self, job_id: str, retry_s: float) -> None:
        self.job_id = job_id
        self.retry_s = retry_s
        self.down = False
        self._retry_at = 0.0

    def allowed(self) -> bool:
        """Whether a call may be tried now."""
        return not self.down or time.monotonic() >= self._retry_at

    def call(self, fn: Callable[[], T]) -> T | None:
        """``fn()``, or None when Redis cannot be reached (logged once per outage)."""
        try:
            result = fn()
        except redis.RedisError as exc:
            if not self.down:
                log.warning("job %s: Redis unavailable, the job keeps running: %s",
                            self.job_id, exc)
            self.down = True
            self._retry_at = time.monotonic() + self.retry_s
            return None
        self.down = False
        return result

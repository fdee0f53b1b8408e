"""What an attempt does while Redis cannot be reached: one policy for every kind of run.

* While the attempt runs (a process, a transfer, a cluster job followed), its loop keeps
  going and keeps checking its deadlines (:class:`RedisGuard`). A partition that drops
  packets silently makes every call block for a socket timeout, so while Redis is
  unreachable only one call per interval probes it; the others are skipped (the caller
  keeps what it could not send). When the lease runs out the attempt stops itself
  (:mod:`simfarm.workers.attempt`).
* Claiming the attempt and recording its outcome are retried while Redis is away
  (:func:`retry_while_redis_away`): both are fenced by the attempt number, so a retry
  after the job was handed on does nothing.
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
                log.warning("job %s: Redis unavailable, the attempt carries on: %s",
                            self.job_id, exc)
            self.down = True
            self._retry_at = time.monotonic() + self.retry_s
            return None
        self.down = False
        return result


def retry_while_redis_away(
    call: Callable[[], T], seconds: float,
    on_retry: Callable[[redis.RedisError], None] | None = None,
) -> T:
    """``call()``, retried with backoff (0.2 s doubling to 1 s) while it raises a Redis
    error, for up to ``seconds``; then the last error is raised. Other errors pass."""
    give_up = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            if time.monotonic() > give_up:
                raise
            if on_retry is not None:
                on_retry(exc)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

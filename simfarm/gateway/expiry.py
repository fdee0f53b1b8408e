"""The retention sweep: forgets finished jobs older than ``job_retention_s``, blobs
unused that long and usage roll-ups older than ``usage_retention_days``, in a
background thread of the gateway (one gateway at a time, by a Redis lock)."""

from __future__ import annotations

import logging
import threading
import time

import redis
from flask import Flask

from simfarm.common.store.history import HistoryStore
from simfarm.common.store.usage import UsageStore
from simfarm.common.usage import day_of
from simfarm.gateway.services import Services

log = logging.getLogger(__name__)

BATCH = 500


class Expirer:
    """Runs :meth:`sweep_once` every ``expiry_interval_s`` seconds."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.history = HistoryStore(svc.jobs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread once (called on the first request: in the serving process)."""
        if self._thread is not None or self.svc.settings.expiry_interval_s <= 0:
            return
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="simfarm-expiry",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        interval = self.svc.settings.expiry_interval_s
        away = False  # Redis unavailable at the last sweep: said once per outage
        while not self._stop.wait(interval):
            try:
                if self._take_turn(interval):
                    self.sweep_once()
            except redis.RedisError as exc:
                if not away:
                    log.warning("retention sweep paused: Redis unavailable: %s", exc)
                away = True
                continue
            except Exception:
                log.exception("retention sweep failed")
            if away:
                log.info("retention sweep resumed: Redis is back")
                away = False

    def _take_turn(self, interval: float) -> bool:
        # Held for most of an interval: one gateway sweeps per interval, and the next
        # turn is free again before the next wake-up.
        return self.history.take_retention_turn(interval * 0.9)

    def sweep_once(self, now: float | None = None) -> int:
        """Expire what is past retention; returns how many jobs were forgotten."""
        now = time.time() if now is None else now
        cutoff = now - self.svc.settings.job_retention_s
        expired = 0
        while True:
            ids = self.history.expired_ids(cutoff, BATCH)
            if not ids:
                break
            for job_id in ids:
                status, _ = self.history.expire(job_id)
                expired += status == "expired"
            if len(ids) < BATCH:
                break
        for sha in self.svc.blob_index.unused_since(cutoff):
            self.svc.blobs.delete(sha)
            self.svc.blob_index.forget(sha)
            log.info("blob %s: expired (unused for the retention time)", sha)
        parts = self.svc.blobs.expire_parts(now - self.svc.settings.upload_part_retention_s)
        if parts:
            log.info("retention: %d interrupted uploads deleted", parts)
        if expired:
            log.info("retention: %d finished jobs expired", expired)
        UsageStore(self.svc.redis, self.svc.settings.key_prefix).forget_before(
            day_of(now) - self.svc.settings.usage_retention_days + 1)
        return expired


def install_expiry(app: Flask) -> None:
    """The retention sweep of ``app``, started by its first request (so in the process
    that serves, not in a parent that forks workers)."""
    expirer = Expirer(app.extensions["simfarm"])
    app.extensions["simfarm.expiry"] = expirer
    app.before_request(expirer.ensure_started)

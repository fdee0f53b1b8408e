"""Writes audit entries from a background thread, many per round trip.

An audit entry used to cost each mutating request one more synchronous Redis round trip
(a third of a submission's time). The request now only queues its entry; this writer
appends queued entries in pipelined batches (letting them gather for a few
milliseconds), retries while Redis is unavailable and
drains the queue at exit. ``flush()`` waits until everything queued so far is stored,
so reading the log right after an action (``GET /api/v1/audit``) sees it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis

from simfarm.common.store.audit import AuditStore

log = logging.getLogger(__name__)

MAX_QUEUED = 100_000
BATCH = 500
#: how long the writer lets entries gather after the first one: a client sending one
#: request after another then costs one append per few milliseconds, not one per request
LINGER_S = 0.005


class AuditWriter:
    """Queues audit entries and appends them to the :class:`AuditStore` in batches."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self._queue: queue.Queue[Mapping[str, Any]] = queue.Queue(MAX_QUEUED)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        atexit.register(self.flush, 5.0)

    def append(self, entry: Mapping[str, Any]) -> None:
        """Queue one entry (written within milliseconds)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:  # Redis has been away for a long time: write in line
            log.warning("audit queue full; writing synchronously")
            self.store.append(entry)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every entry queued so far is stored; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def _ensure_thread(self) -> None:
        # Started lazily, and again after a fork (gunicorn loads the app, then forks).
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="simfarm-audit",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            time.sleep(LINGER_S)
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            delay = 0.1
            while True:
                try:
                    self.store.append_many(batch)
                    break
                except redis.RedisError as exc:
                    log.warning("audit: %d entries wait for Redis: %s", len(batch), exc)
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                except Exception:
                    log.exception("audit: %d entries could not be written", len(batch))
                    break
            for _ in batch:
                self._queue.task_done()

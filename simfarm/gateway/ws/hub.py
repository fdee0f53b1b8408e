"""The fan-out hub: one thread per gateway process reads the farm-wide event stream once
(``XREAD BLOCK``) and hands each event, serialised once, to the bounded queues of the
WebSocket clients whose filter it matches."""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass

import redis

from simfarm.common.models import JobEvent
from simfarm.common.store import JobStore
from simfarm.common.ws_protocol import CloseCode, EventFilter, event_frame, event_key
from simfarm.gateway.ws.frames import text_frame

log = logging.getLogger(__name__)

# One queued event: (sort key of its id, its id, its JSON frame). ``None`` wakes the reader.
# (event key, event id, WebSocket frame bytes, job id); None wakes the session up.
QueueItem = tuple[tuple[int, int], str, bytes, str] | None


class Subscriber:
    """One WebSocket client's side of the hub: its filter and its bounded queue."""

    def __init__(self, event_filter: EventFilter, queue_size: int) -> None:
        self.filter = event_filter
        self.queue: queue.Queue[QueueItem] = queue.Queue(queue_size)
        # Set by the hub when the client must go; the handler closes with this code.
        self.close_code: CloseCode | None = None

    def offer(self, item: QueueItem) -> bool:
        """Queue an item without ever blocking the hub; False when the queue is full."""
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def end(self, code: CloseCode) -> None:
        """Ask the client's handler to close the connection with ``code``."""
        if self.close_code is None:
            self.close_code = code
        self.offer(None)


@dataclass(frozen=True)
class HubStats:
    """Numbers for metrics: connected clients and what the hub has done so far."""

    clients: int
    connections_total: int
    dropped_slow_total: int
    events_total: int
    position: str


class Hub:
    """Distributes the farm-wide event stream to subscribers. Thread-safe.

    The reader thread starts with the first subscriber (in the process that serves it:
    gunicorn forks after the app is built) and keeps running until :meth:`shutdown`.
    """

    def __init__(
        self, store: JobStore, *, max_clients: int, block_ms: int = 5000, batch: int = 1000
    ) -> None:
        self.store = store
        self.max_clients = max_clients
        self.block_ms = block_ms
        self.batch = batch
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        self._slots = 0
        self._position = "0-0"
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self._closing = False
        self._connections_total = 0
        self._dropped_slow_total = 0
        self._events_total = 0

    # ------------------------------------------------------------------ clients
    def acquire_slot(self) -> bool:
        """Reserve room for one more client; False when ``max_clients`` are connected."""
        with self._lock:
            if self._closing or self._slots >= self.max_clients:
                return False
            self._slots += 1
            self._connections_total += 1
            return True

    def release_slot(self) -> None:
        """Give back a slot taken by :meth:`acquire_slot`."""
        with self._lock:
            self._slots -= 1

    def subscribe(self, event_filter: EventFilter, queue_size: int) -> tuple[Subscriber, str]:
        """Register a subscriber. Returns it and the hub's position at that instant:
        every event after that id reaches the subscriber's queue, none before."""
        self._ensure_reader()
        subscriber = Subscriber(event_filter, queue_size)
        with self._lock:
            if self._closing:
                subscriber.end(CloseCode.GOING_AWAY)
            self._subscribers.add(subscriber)
            return subscriber, self._position

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscriber (idempotent)."""
        with self._lock:
            self._subscribers.discard(subscriber)

    @property
    def position(self) -> str:
        """Id of the last event distributed to every subscriber."""
        with self._lock:
            return self._position

    def stats(self) -> HubStats:
        """Counters for the metrics endpoint."""
        with self._lock:
            return HubStats(
                clients=self._slots,
                connections_total=self._connections_total,
                dropped_slow_total=self._dropped_slow_total,
                events_total=self._events_total,
                position=self._position,
            )

    def shutdown(self) -> None:
        """Stop reading and ask every client to close with 1001 (going away)."""
        self._stop.set()
        with self._lock:
            self._closing = True
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.end(CloseCode.GOING_AWAY)

    # ------------------------------------------------------------------ reader thread
    def _ensure_reader(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._thread is not None and self._pid == pid and self._thread.is_alive():
                return
            if self._pid != pid:
                # Start from the stream's current end, read synchronously so that the
                # position handed to the first subscriber is exact.
                self._position = self.store.last_event_id()
                self._pid = pid
            self._thread = threading.Thread(
                target=self._run, name="simfarm-ws-fanout", daemon=True
            )
            self._thread.start()
            log.info("websocket fan-out reader started at event %s", self._position)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                events = self.store.global_events(
                    since=self.position, block_ms=self.block_ms, count=self.batch
                )
            except redis.RedisError as exc:
                log.warning("websocket fan-out: reading events failed (%s); retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                log.exception("websocket fan-out: unexpected error; retrying")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if events:
                self._distribute(events)

    def _distribute(self, events: list[JobEvent]) -> None:
        items = [(event_key(e.id), e.id, text_frame(event_frame(e)), e) for e in events]
        with self._lock:
            for subscriber in list(self._subscribers):
                flt = subscriber.filter
                for key, event_id, frame, event in items:
                    if not flt.matches(event.job_id, event.type, event.data):
                        continue
                    if not subscriber.offer((key, event_id, frame, event.job_id)):
                        self._subscribers.discard(subscriber)
                        self._dropped_slow_total += 1
                        subscriber.close_code = CloseCode.TOO_SLOW
                        log.warning("websocket client too slow: dropped at event %s", event_id)
                        break
            self._position = events[-1].id
            self._events_total += len(events)

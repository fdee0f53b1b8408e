"""One WebSocket connection: read the subscription, replay, then relay live events."""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from pydantic import BaseModel, ValidationError

from simfarm.common.models import JobEvent
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from simfarm.common.ws_protocol import (
    SUBSCRIBE_TIMEOUT_S,
    CloseCode,
    ErrorMessage,
    Gap,
    Heartbeat,
    Live,
    Subscribe,
    Subscribed,
    event_frame,
    newer,
)
from simfarm.gateway.ws.hub import Hub, Subscriber
from simfarm.gateway.ws.replay import Replayed, gaps, replay, replayed_jobs

log = logging.getLogger(__name__)

# How often a waiting handler looks at its connection (closed by the peer?) and input.
POLL_S = 1.0
MAX_COALESCED = 256  # queued frames sent in one write


class Connection(Protocol):
    """What the session needs from a server-side WebSocket (simple-websocket's Server)."""

    connected: bool
    sock: Any

    def send(self, data: str) -> None: ...

    def receive(self, timeout: float | None = None) -> Any: ...

    def close(self, reason: int | None = None, message: str | None = None) -> None: ...


class Closed(Exception):
    """The session ends with this close code."""

    def __init__(self, code: CloseCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Session:
    """Serves one connection from subscribe to close."""

    def __init__(
        self,
        ws: Connection,
        hub: Hub,
        store: JobStore,
        settings: Settings,
        visible: Callable[[str], bool] | None = None,
    ) -> None:
        """``visible(job_id)`` limits what is sent to jobs the caller may see (None: all)."""
        self.visible = visible
        self.ws = ws
        self.hub = hub
        self.store = store
        self.settings = settings
        self.cursor = "0-0"
        self._last_sent = time.monotonic()

    def run(self) -> None:
        """Serve the connection; returns when it is closed (by either side)."""
        if not self.hub.acquire_slot():
            self._close(CloseCode.TRY_AGAIN_LATER, "too many WebSocket clients; retry later")
            return
        try:
            self._serve()
        except Closed as closed:
            self._close(closed.code, closed.message)
        except OSError as exc:  # the peer vanished or a send timed out
            log.info("websocket connection lost: %s", exc)
        finally:
            self.hub.release_slot()

    def _serve(self) -> None:
        subscription = self._read_subscription()
        subscriber, head = self.hub.subscribe(
            subscription.event_filter(), self.settings.ws_queue_size
        )
        try:
            self._send_model(
                Subscribed(
                    head=head,
                    heartbeat_s=self.settings.ws_heartbeat_s,
                    jobs=self._snapshot(subscription) if subscription.snapshot else None,
                )
            )
            self.cursor = head
            replayed = Replayed(by_job=replayed_jobs(subscription) is not None)
            if subscription.since is not None:
                last = self._replay(subscription, replayed)
                self.cursor = newer(last, head) or head
            self._send_model(Live(id=self.cursor))
            self._relay(subscriber, replayed)
        finally:
            self.hub.unsubscribe(subscriber)

    # ------------------------------------------------------------------ phases
    def _read_subscription(self) -> Subscribe:
        raw = self.ws.receive(timeout=SUBSCRIBE_TIMEOUT_S)
        if raw is None:
            raise Closed(CloseCode.POLICY_VIOLATION, "send a subscribe message first")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self._refuse("bad_request", "the message is not JSON", [])
        if not isinstance(data, dict) or data.get("op") != "subscribe":
            self._refuse("bad_request", 'the first message must be {"op": "subscribe", ...}', [])
        try:
            return Subscribe.model_validate(data)
        except ValidationError as exc:
            fields = [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            detail = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
            self._refuse("validation_error", detail, fields)

    def _refuse(self, error: str, detail: str, fields: list[dict[str, str]]) -> NoReturn:
        self._send_model(ErrorMessage(error=error, detail=detail, fields=fields))
        raise Closed(CloseCode.POLICY_VIOLATION, error)

    def _snapshot(self, subscription: Subscribe) -> dict[str, JobState | None]:
        jobs = list(dict.fromkeys(subscription.jobs or []))
        states = self.store.states_of(jobs)
        return {job: (JobState(s) if s and (self.visible is None or self.visible(job)) else None)
                for job, s in zip(jobs, states, strict=True)}

    def _replay(self, subscription: Subscribe, replayed: Replayed) -> str | None:
        assert subscription.since is not None
        for first_id in gaps(self.store, subscription)[:1]:
            self._send_model(Gap(since=subscription.since, first_id=first_id))
        last: str | None = None
        for event in replay(self.store, subscription):
            self._send_event(event)
            replayed.add(event)
            last = event.id
        return last

    def _relay(self, subscriber: Subscriber, replayed: Replayed) -> None:
        heartbeat_s = self.settings.ws_heartbeat_s
        while True:
            if subscriber.close_code is not None:
                code = subscriber.close_code
                raise Closed(code, _REASONS.get(code, code.name.lower()))
            if not self.ws.connected:
                return
            idle = time.monotonic() - self._last_sent
            try:
                item = subscriber.queue.get(timeout=max(0.0, min(POLL_S, heartbeat_s - idle)))
            except queue.Empty:
                self._drain_input()
                if time.monotonic() - self._last_sent >= heartbeat_s:
                    self._heartbeat(subscriber)
                continue
            # What else is already queued goes out in the same write (fewer wake-ups
            # and system calls when events come in bursts, as a job's do).
            frames: list[bytes] = []
            last: str | None = None
            while True:
                if item is not None:
                    key, event_id, frame, job_id = item
                    # Skipped: already sent by the replay, or another user's job.
                    if not replayed.covers(key, job_id) and (
                            self.visible is None or self.visible(job_id)):
                        frames.append(frame)
                        last = event_id
                if len(frames) >= MAX_COALESCED:
                    break
                try:
                    item = subscriber.queue.get_nowait()
                except queue.Empty:
                    break
            if frames:
                self._send_frame(b"".join(frames))
                assert last is not None
                self.cursor = last

    def _heartbeat(self, subscriber: Subscriber) -> None:
        # Read the position before looking at the queue: the hub queues a batch's events
        # before it moves the position, so an empty queue means all up to it were sent.
        position = self.hub.position
        if subscriber.queue.empty():
            self.cursor = newer(position, self.cursor) or position
        self._send_model(Heartbeat(id=self.cursor, ts=time.time()))

    def _drain_input(self) -> None:
        # Clients have nothing more to say after subscribing; discard what they send.
        while self.ws.receive(timeout=0) is not None:
            pass

    # ------------------------------------------------------------------ sending
    def _send_event(self, event: JobEvent) -> None:
        if self.visible is not None and not self.visible(event.job_id):
            return
        self._send(event_frame(event))
        self.cursor = event.id

    def _send_model(self, message: BaseModel) -> None:
        self._send(message.model_dump_json())

    def _send_frame(self, frame: bytes) -> None:
        """Write a ready-made frame (shared by every client) straight to the socket."""
        if not self.ws.connected:
            raise OSError("connection closed")
        self.ws.sock.send(frame)
        self._last_sent = time.monotonic()

    def _send(self, frame: str) -> None:
        self.ws.send(frame)
        self._last_sent = time.monotonic()

    def _close(self, code: CloseCode, message: str) -> None:
        try:
            if self.ws.connected:
                self.ws.close(reason=int(code), message=message)
        except Exception as exc:  # closing a broken connection: nothing left to do
            log.debug("websocket close (%d) failed: %s", code, exc)


_REASONS = {
    CloseCode.GOING_AWAY: "the gateway is shutting down; reconnect and resume",
    CloseCode.TOO_SLOW: "client too slow; reconnect and resume from your last event id",
    CloseCode.INTERNAL_ERROR: "unexpected server error",
}

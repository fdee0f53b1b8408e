"""The ``/api/v1/ws`` route (flask-sock) and the socket wrapper that makes sends safe."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_sock import Sock

from simfarm.common.errors import JobNotFound
from simfarm.common.store import JobStore
from simfarm.common.ws_protocol import WS_PATH, EventMessage, Subscribe
from simfarm.gateway.auth import current_user
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.services import services
from simfarm.gateway.ws.hub import Hub
from simfarm.gateway.ws.session import Session

MAX_MESSAGE_BYTES = 1024 * 1024
EXTENSION = "simfarm_ws"


class LockedSocket:
    """Wraps the connection's socket so that every send is whole and serialised.

    simple-websocket sends from two threads (the handler, and its reader thread for
    pongs and pings) with ``socket.send``, which may write part of a frame; frames of
    the two must never interleave. A send that makes no progress for the socket's
    timeout aborts the connection (a slow or vanished client must not hold a thread).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            try:
                self._sock.sendall(data)
            except TimeoutError:
                self._abort()
                raise
        return len(data)

    def _abort(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def hub_of(app: Flask) -> Hub | None:
    """The app's WebSocket hub, for metrics and shutdown (None before registration)."""
    hub: Hub | None = app.extensions.get(EXTENSION)
    return hub


def _visibility(store: JobStore) -> Callable[[str], bool] | None:
    """For a non-admin caller: whether a job is theirs (owners never change, so each
    job's owner is read once per connection)."""
    principal = current_user()
    if principal.admin:
        return None
    known: dict[str, bool] = {}

    def visible(job_id: str) -> bool:
        if job_id not in known:
            if len(known) > 100_000:
                known.clear()
            try:
                known[job_id] = store.owner_of(job_id) == principal.user
            except JobNotFound:
                known[job_id] = False
        return known[job_id]

    return visible


def register(app: Flask) -> None:
    """Add the WebSocket route and its hub to the gateway app."""
    svc = app.extensions["simfarm"]
    settings = svc.settings
    max_clients = settings.ws_max_clients or (
        min(5000, settings.gateway_connections // 2) if settings.gateway_worker_class == "gevent"
        else max(1, settings.gateway_threads * 3 // 4))
    app.extensions[EXTENSION] = Hub(svc.jobs, max_clients=max_clients)
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": settings.ws_ping_s,
        "max_message_size": MAX_MESSAGE_BYTES,
    }
    sock = Sock(app)

    @sock.route(WS_PATH, endpoint="websocket")  # type: ignore[untyped-decorator]
    @document(
        tags=["events"],
        websocket=True,
        body=Body(Subscribe, "the first message after the upgrade"),
        responses={101: Body(EventMessage, "switching protocols; then JSON messages")},
    )
    def websocket(ws: Any) -> None:
        """Live job events: state changes, log lines, progress.

        Send one ``subscribe`` message (all jobs, some job ids, a state filter, event
        types, and ``since`` to resume); receive ``subscribed``, the replay, ``live``,
        then each event as it happens, with ``heartbeat`` messages when idle. Resuming
        with the last event id loses and repeats nothing. Full protocol, close codes and
        limits: docs/websocket.md."""
        svc = services()
        raw = ws.sock
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, svc.settings.ws_send_buffer_bytes)
        # The reader thread waits in select() before each recv (ping_interval is set), so
        # this timeout only bounds sends.
        raw.settimeout(svc.settings.ws_send_timeout_s)
        ws.sock = LockedSocket(raw)
        hub = app.extensions[EXTENSION]
        Session(ws, hub, svc.jobs, svc.settings, visible=_visibility(svc.jobs)).run()

"""The gateway's gunicorn worker: gevent (one greenlet per connection, so thousands of
idle or slow clients cost memory, not threads), with three guards against slow clients:

* a request's line and headers must arrive within ``gateway_header_timeout_s`` (gunicorn
  bounds each wait for the next request by ``keepalive``, which the server sets to it);
* a connection that sends or accepts nothing for ``gateway_read_timeout_s`` while a
  request is read or answered is closed (the socket's timeout);
* one client address holds at most ``gateway_client_connections`` connections at once;
  more are answered 503 and closed at once.

When the gateway stops, connections idle between two requests (keep-alive) are closed at
once, as nginx does: gunicorn would otherwise wait ``graceful_timeout`` for each client
that keeps one open, and a restart would take seconds for nothing.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from typing import Any, ClassVar

from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

log = logging.getLogger(__name__)

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\n"
         b"Connection: close\r\n\r\n")


class GuardedGeventWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with a per-connection read timeout and a bound on the
    connections of one client address (class attributes set by ``server.serve``)."""

    read_timeout_s: ClassVar[float] = 30.0
    client_connections: ClassVar[int] = 1024
    _open: Counter[str]
    _idle: set[socket.socket]  # connections waiting for their next request
    _refused = 0

    def init_process(self) -> None:
        self._open = Counter()
        self._idle = set()
        super().init_process()

    def close_idle_connections(self) -> None:
        """End every keep-alive connection that is between two requests (the stop)."""
        for client in list(self._idle):
            try:
                client.shutdown(socket.SHUT_RDWR)  # its handler reads EOF and returns
            except OSError:
                pass
        self._idle.clear()

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        self._idle.discard(sock)
        try:
            return bool(super().handle_request(listener_name, req, sock, addr))
        finally:
            if self.alive:
                self._idle.add(sock)

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        host = str(addr[0]) if isinstance(addr, tuple) and addr else ""
        if self._open[host] >= self.client_connections:
            self._refuse(client, host)
            return
        self._open[host] += 1
        self._idle.add(client)
        try:
            client.settimeout(self.read_timeout_s)
            AsyncWorker.handle(self, listener, client, addr)
        finally:
            self._idle.discard(client)
            self._open[host] -= 1
            if self._open[host] <= 0:
                del self._open[host]

    def _refuse(self, client: socket.socket, host: str) -> None:
        self._refused += 1
        if self._refused in (1, 10, 100) or self._refused % 1000 == 0:
            log.warning("refused a connection from %s: it holds %d already (%d refused so "
                        "far; gateway_client_connections)", host, self.client_connections,
                        self._refused)
        try:
            client.settimeout(1.0)
            client.sendall(_BUSY)
        except OSError:
            pass
        finally:
            client.close()

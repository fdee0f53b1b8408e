"""The gateway's gunicorn worker: gevent (one greenlet per connection, so thousands of
idle or slow clients cost memory, not threads), with three guards against slow clients:

* a request's line and headers must arrive within ``gateway_header_timeout_s`` (gunicorn
  bounds each wait for the next request by ``keepalive``, which the server sets to it);
* a connection that sends or accepts nothing for ``gateway_read_timeout_s`` while a
  request is read or answered is closed (the socket's timeout);
* one client address holds at most ``gateway_client_connections`` connections at once;
  more are answered 503 and closed at once.
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
    _refused = 0

    def init_process(self) -> None:
        self._open = Counter()
        super().init_process()

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        host = str(addr[0]) if isinstance(addr, tuple) and addr else ""
        if self._open[host] >= self.client_connections:
            self._refuse(client, host)
            return
        self._open[host] += 1
        try:
            client.settimeout(self.read_timeout_s)
            AsyncWorker.handle(self, listener, client, addr)
        finally:
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

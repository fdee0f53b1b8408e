"""A slow-client attacker for the gateway tests and benchmarks: ``slow`` connections that
send a request's headers one byte per second (and reconnect when the gateway closes
them) plus ``idle`` connections that send nothing, all from one thread.

The connections come from 127.0.0.2, so that their many ephemeral ports never take a
port another test chose for a server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading

_HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Slowloris:
    """Holds ``slow`` + ``idle`` connections to ``host:port`` until :meth:`stop`."""

    def __init__(self, port: int, slow: int, idle: int, host: str = "127.0.0.1",
                 interval_s: float = 1.0, source: str = "127.0.0.2") -> None:
        self.address = (host, port)
        self.source = (source, 0)
        self.slow, self.idle = slow, idle
        self.interval_s = interval_s
        self.reconnects = 0
        self._socks: dict[socket.socket, int] = {}  # socket -> bytes of _HEAD sent (-1 idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="slowloris")

    def _open(self, sent: int) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5,
                                            source_address=self.source)
        except OSError:
            return
        sock.setblocking(False)
        self._socks[sock] = sent

    def start(self) -> Slowloris:
        for _ in range(self.slow):
            self._open(0)
        for _ in range(self.idle):
            self._open(-1)
        self._thread.start()
        return self

    @property
    def open_connections(self) -> int:
        return len(self._socks)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for sock, sent in list(self._socks.items()):
                closed = False
                try:
                    if sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        closed = True
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                if not closed and sent >= 0:
                    try:
                        byte = _HEAD[sent:sent + 1] if sent < len(_HEAD) else b"X"
                        sock.send(byte)
                        self._socks[sock] = sent + 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed = True
                if closed:  # the gateway gave up on it: come back, as an attacker would
                    del self._socks[sock]
                    sock.close()
                    self.reconnects += 1
                    self._open(0 if sent >= 0 else -1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for sock in list(self._socks):
            sock.close()
        self._socks.clear()

    def __enter__(self) -> Slowloris:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


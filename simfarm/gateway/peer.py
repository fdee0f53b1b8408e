"""Which local OS account opened a loopback TCP connection (Linux), so that a gateway
without tokens serves only the account it runs as.

The kernel lists every TCP socket of this network namespace, with the user id that
owns it, in ``/proc/net/tcp`` and ``/proc/net/tcp6`` (proc(5)). The client's end of a
connection to us is the entry whose local address is the request's remote address
and whose remote address is our listening address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
import weakref

_ESTABLISHED = b"01"


def supported() -> bool:
    """Whether this platform can tell the account behind a connection."""
    return sys.platform.startswith("linux")


def _hex(address: str, port: int) -> tuple[str, str] | None:
    """(table, ``address:port``) as /proc/net/tcp or tcp6 writes it."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None
    if ip.version == 4:
        return "/proc/net/tcp", f"{ip.packed[::-1].hex().upper()}:{port:04X}"
    # tcp6 prints the 16 bytes as four 32-bit words in host (little-endian) order
    words = struct.unpack("!4I", ip.packed)
    return "/proc/net/tcp6", "".join(struct.pack("<I", w).hex() for w in words).upper() \
        + f":{port:04X}"


def _candidates(remote: str) -> list[str]:
    """Where the client's socket may be listed: an IPv4 client of a dual-stack server
    shows as ``::ffff:a.b.c.d`` to the server but has an IPv4 socket."""
    try:
        ip = ipaddress.ip_address(remote.strip("[]"))
    except ValueError:
        return []
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return [str(ip.ipv4_mapped), str(ip)]
    return [str(ip)]


def _table(name: str) -> bytes:
    # One large read: the kernel walks the socket table per read() call, and sockets
    # opened or closed between two calls can make a chunked reader miss a row.
    fd = os.open(name, os.O_RDONLY)
    try:
        parts = []
        while chunk := os.read(fd, 1 << 22):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def peer_uid(remote: str, remote_port: int, local_port: int, tries: int = 3) -> int | None:
    """The uid owning the client socket ``remote:remote_port`` of an established
    connection to our port ``local_port``, or None if no such connection is listed."""
    server_port = f":{local_port:04X}".encode()
    wanted = [found for form in _candidates(remote) if (found := _hex(form, remote_port))]
    for _ in range(tries):
        for table, client in wanted:
            try:
                rows = _table(table).splitlines()[1:]
            except OSError:
                continue
            key = client.encode()
            for row in rows:
                fields = row.split()
                if (len(fields) > 7 and fields[1] == key and fields[3] == _ESTABLISHED
                        and fields[2].endswith(server_port)):
                    return int(fields[7])
    return None


def local_port(environ: dict[str, object]) -> int | None:
    """Our end's port of a WSGI request's connection (gunicorn's socket), else
    ``SERVER_PORT``."""
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        try:
            return int(sock.getsockname()[1])
        except OSError:
            return None
    try:
        return int(str(environ.get("SERVER_PORT", "")))
    except ValueError:
        return None


_known: weakref.WeakKeyDictionary[socket.socket, int] = weakref.WeakKeyDictionary()


def connection_uid(environ: dict[str, object], remote: str) -> int | None:
    """The uid behind a WSGI request's connection (looked up once per connection)."""
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket) and sock in _known:
        return _known[sock]
    port = local_port(environ)
    try:
        remote_port = int(str(environ.get("REMOTE_PORT", "")))
    except ValueError:
        return None
    uid = peer_uid(remote, remote_port, port) if port else None
    if uid is not None and isinstance(sock, socket.socket):
        try:
            _known[sock] = uid
        except TypeError:  # a socket type without weak references: look up each time
            pass
    return uid

"""Which local OS account opened a loopback TCP connection (Linux), so that a gateway
without tokens serves only the account it runs as.

The kernel knows the user id owning every socket: asked for one connection's client
end through sock_diag netlink (sock_diag(7): an exact lookup by addresses and ports,
the way ``ss`` does it), else found in the tables ``/proc/net/tcp`` and
``/proc/net/tcp6`` (proc(5)), whose rows can be missed while connections come and go.
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


_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NETLINK_SOCK_DIAG = 4
_NOCOOKIE = 0xFFFFFFFF


def _diag_uid(client: str, client_port: int, server: str, server_port: int) -> int | None:
    """Ask the kernel (sock_diag netlink, an exact lookup) who owns the socket
    ``client:client_port`` -> ``server:server_port``; None if it cannot say."""
    try:
        c_ip, s_ip = ipaddress.ip_address(client), ipaddress.ip_address(server)
    except ValueError:
        return None
    if c_ip.version != s_ip.version:
        return None
    family = socket.AF_INET if c_ip.version == 4 else socket.AF_INET6
    sockid = struct.pack("!HH16s16s", client_port, server_port, c_ip.packed.ljust(16, b"\0"),
                         s_ip.packed.ljust(16, b"\0")) + struct.pack("=III", 0, _NOCOOKIE,
                                                                      _NOCOOKIE)
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST,
                         1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(1.0)
            nl.send(header + request)
            reply = nl.recv(8192)
    except OSError:
        return None
    if len(reply) < 16:
        return None
    kind = struct.unpack_from("=H", reply, 4)[0]
    if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < 16 + 4 + 48 + 20:
        return None  # NLMSG_ERROR: no such socket
    # inet_diag_msg: 4 bytes, sockid (48), expires, rqueue, wqueue, uid, inode
    return int(struct.unpack_from("=IIIII", reply, 16 + 4 + 48)[3])


def peer_uid(remote: str, remote_port: int, local_port: int, tries: int = 3,
             local: str | None = None) -> int | None:
    """The uid owning the client socket ``remote:remote_port`` of an established
    connection to our port ``local_port``, or None if no such connection is listed.
    With our own address ``local`` known the kernel is asked directly (sock_diag);
    otherwise, or if that fails, the socket tables are searched."""
    if local is not None:
        for form in _candidates(remote):
            for ours in _candidates(local):
                uid = _diag_uid(form, remote_port, ours, local_port)
                if uid is not None:
                    return uid
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


def local_address(environ: dict[str, object]) -> tuple[str | None, int | None]:
    """Our end (address, port) of a WSGI request's connection (gunicorn's socket), else
    (None, ``SERVER_PORT``)."""
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        try:
            name = sock.getsockname()
            return str(name[0]), int(name[1])
        except OSError:
            return None, None
    try:
        return None, int(str(environ.get("SERVER_PORT", "")))
    except ValueError:
        return None, None


_known: weakref.WeakKeyDictionary[socket.socket, int] = weakref.WeakKeyDictionary()


def connection_uid(environ: dict[str, object], remote: str) -> int | None:
    """The uid behind a WSGI request's connection (looked up once per connection)."""
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket) and sock in _known:
        return _known[sock]
    local, port = local_address(environ)
    try:
        remote_port = int(str(environ.get("REMOTE_PORT", "")))
    except ValueError:
        return None
    uid = peer_uid(remote, remote_port, port, local=local) if port else None
    if uid is not None and isinstance(sock, socket.socket):
        try:
            _known[sock] = uid
        except TypeError:  # a socket type without weak references: look up each time
            pass
    return uid

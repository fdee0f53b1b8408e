"""The client's address behind a load balancer (``gateway_trusted_proxies``).

Behind HAProxy or nginx every connection comes from the balancer; the client's own
address arrives in ``X-Forwarded-For``. That header is believed only from a configured
balancer, and only as far as the chain is made of configured balancers: the client is
the rightmost address not in ``gateway_trusted_proxies`` (anyone can prepend addresses
of their own). Runs before every other hook, so the Host check, authentication, the
audit log and log lines all see the client.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask, request

from simfarm.common.settings import Settings

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The balancers whose ``X-Forwarded-For`` is believed."""

    def __init__(self, entries: list[str]) -> None:
        self.networks: list[Network] = [ipaddress.ip_network(e.strip(), strict=False)
                                        for e in entries]

    def trusted(self, address: str) -> bool:
        """Whether ``address`` is one of the balancers."""
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client behind a connection from ``peer`` with this ``X-Forwarded-For``."""
        if not forwarded_for or not self.trusted(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if not self.trusted(hop):
                try:
                    ipaddress.ip_address(hop.strip("[]"))
                except ValueError:
                    return peer  # not an address: a forged or garbled header
                return hop.strip("[]")
        return peer  # only balancers in the chain


def install_proxies(app: Flask, settings: Settings) -> None:
    """Give requests from a trusted balancer the client's address (``REMOTE_ADDR``)."""
    if not settings.gateway_trusted_proxies:
        return
    proxies = TrustedProxies(list(settings.gateway_trusted_proxies))

    def _client_address() -> None:
        environ = request.environ
        peer = str(environ.get("REMOTE_ADDR", ""))
        client = proxies.client(peer, request.headers.get("X-Forwarded-For"))
        if client != peer:
            environ["simfarm.proxy_addr"] = peer
            environ["REMOTE_ADDR"] = client
            request.remote_addr = client

    app.before_request(_client_address)

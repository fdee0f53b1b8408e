"""Live job events over WebSocket at ``/api/v1/ws`` (protocol: docs/websocket.md)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Flask

from simfarm.gateway.ws.hub import Hub, HubStats
from simfarm.gateway.ws.route import hub_of, register

__all__ = ["Hub", "HubStats", "hub_of", "register", "shutdown", "ws_stats"]


def ws_stats(app: Flask) -> dict[str, Any]:
    """WebSocket numbers for metrics: ``clients`` (connected now), ``connections_total``,
    ``dropped_slow_total``, ``events_total`` and ``position`` (last event id read)."""
    hub = hub_of(app)
    if hub is None:
        return asdict(HubStats(0, 0, 0, 0, "0-0"))
    return asdict(hub.stats())


def shutdown(app: Flask) -> None:
    """Close every WebSocket with 1001 so a stopping gateway does not wait for them."""
    hub = hub_of(app)
    if hub is not None:
        hub.shutdown()

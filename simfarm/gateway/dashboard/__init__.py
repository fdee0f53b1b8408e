"""The web dashboard served by the gateway at ``/``: server-rendered Jinja2 pages plus a
little plain JavaScript (no build step, no CDN). Live views use the WebSocket
``/api/v1/ws`` (docs/websocket.md) and fall back to long-polling; every change goes
through the REST API, so the dashboard shows the API's own validation messages."""

from simfarm.gateway.dashboard.views import bp

__all__ = ["bp"]

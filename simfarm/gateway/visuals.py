"""Plugs the pictures into the gateway app: solve progress as a series, the farm's time
series, result summaries (Touchstone S-parameters) and notification webhooks."""

from __future__ import annotations

from flask import Flask

from simfarm.gateway import progress_api, results_api, stats_api, webhooks_api


def install_visuals(app: Flask) -> None:
    """Register the routes behind the dashboard's charts."""
    app.register_blueprint(progress_api.bp)
    stats_api.install_stats(app)
    app.register_blueprint(results_api.bp)
    app.register_blueprint(webhooks_api.bp)  # notifications

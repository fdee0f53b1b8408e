"""Plugs files, sweeps, resubmit, history and audit into the gateway app."""

from __future__ import annotations

from flask import Flask

from simfarm.gateway import files_api, sweeps_api


def install_workflow(app: Flask) -> None:
    """Register the routes and hooks of project files, sweeps, history and audit."""
    app.register_blueprint(files_api.bp)
    app.register_blueprint(sweeps_api.bp)

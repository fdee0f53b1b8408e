"""Plugs files, sweeps, resubmit, history and audit into the gateway app."""

from __future__ import annotations

from flask import Flask

from simfarm.gateway import files_api, history_api, sweeps_api, workflows_api
from simfarm.gateway.audit import install_audit
from simfarm.gateway.expiry import Expirer
from simfarm.gateway.services import Services


def install_workflow(app: Flask) -> None:
    """Register the routes and hooks of project files, sweeps, history and audit, and
    the retention sweep (started by the first request, so in the serving process)."""
    app.register_blueprint(files_api.bp)
    app.register_blueprint(sweeps_api.bp)
    app.register_blueprint(history_api.bp)
    app.register_blueprint(workflows_api.bp)
    install_audit(app)
    svc: Services = app.extensions["simfarm"]
    expirer = Expirer(svc)
    app.extensions["simfarm.expiry"] = expirer
    app.before_request(expirer.ensure_started)

"""The Flask application factory of the gateway."""

from __future__ import annotations

import logging

import redis
from flask import Flask

from simfarm.common.settings import Settings
from simfarm.gateway import (
    batch_api,
    dashboard,
    health_api,
    jobs_api,
    metrics,
    pyedb_docs,
    pyedb_limits,
    pyedb_routes,
    workers_api,
    ws,
)
from simfarm.gateway.auth import install_auth
from simfarm.gateway.errors import install_error_handlers
from simfarm.gateway.openapi import routes as openapi_routes
from simfarm.gateway.requests import install_request_parsing
from simfarm.gateway.services import build_services
from simfarm.gateway.visuals import install_visuals
from simfarm.gateway.web_guard import install_web_guard
from simfarm.gateway.workflow import install_workflow

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, connection: redis.Redis | None = None) -> Flask:
    """Build the gateway app for ``settings`` (from the environment by default)."""
    settings = settings or Settings()
    app = Flask("simfarm.gateway", static_folder=None)  # assets are served by routes
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["simfarm"] = build_services(settings, connection)
    install_error_handlers(app)
    install_web_guard(app, settings)  # Host, Origin, form posts: before authentication
    install_auth(app, settings)  # first: refuses an exposed bind without tokens
    install_request_parsing(app)
    app.register_blueprint(jobs_api.bp)
    app.register_blueprint(batch_api.bp)  # POST /api/v1/jobs/batch
    app.register_blueprint(health_api.bp)
    app.register_blueprint(workers_api.bp)  # nodes, local limits, PATCH job priority
    ws.register(app)
    app.register_blueprint(pyedb_routes.bp)  # PyEDB job-manager routes and JSON shapes
    app.register_blueprint(pyedb_limits.bp)  # PUT /pool/limits onto node limits
    assert pyedb_docs.TAG  # their OpenAPI metadata
    app.register_blueprint(openapi_routes.bp)
    install_workflow(app)  # files, sweeps, resubmit, history, audit
    install_visuals(app)  # progress series, farm series, result summaries, webhooks
    app.extensions[metrics.EXTENSION] = metrics.GatewayMetrics()
    app.register_blueprint(metrics.bp)
    app.register_blueprint(dashboard.bp)  # web UI at /
    return app

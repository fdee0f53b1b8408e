"""The Flask application factory of the gateway."""

from __future__ import annotations

import logging

import redis
from flask import Flask

from simfarm.common.settings import Settings
from simfarm.gateway import (
    accounts_api,
    batch_api,
    dashboard,
    fairshare_api,
    files_api,
    health_api,
    history_api,
    holds_api,
    jobs_api,
    licenses_api,
    metrics,
    pyedb_docs,
    pyedb_limits,
    pyedb_routes,
    sweeps_api,
    usage_api,
    workers_api,
    workflows_api,
    ws,
)
from simfarm.gateway.audit import install_audit
from simfarm.gateway.auth import install_auth
from simfarm.gateway.errors import install_error_handlers
from simfarm.gateway.expiry import install_expiry
from simfarm.gateway.openapi import routes as openapi_routes
from simfarm.gateway.parsing import install_request_parsing
from simfarm.gateway.proxies import install_proxies
from simfarm.gateway.services import build_services
from simfarm.gateway.visuals import install_visuals
from simfarm.gateway.web_guard import install_web_guard

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, connection: redis.Redis | None = None) -> Flask:
    """Build the gateway app for ``settings`` (from the environment by default)."""
    settings = settings or Settings()
    app = Flask("simfarm.gateway", static_folder=None)  # assets are served by routes
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["simfarm"] = build_services(settings, connection)
    install_error_handlers(app)
    install_proxies(app, settings)  # the client's address behind a balancer: first
    install_web_guard(app, settings)  # Host, Origin, form posts: before authentication
    install_auth(app, settings)  # first: refuses an exposed bind without tokens
    install_request_parsing(app)
    app.register_blueprint(jobs_api.bp)
    app.register_blueprint(batch_api.bp)  # POST /api/v1/jobs/batch
    app.register_blueprint(health_api.bp)
    app.register_blueprint(workers_api.bp)  # nodes, local limits, PATCH job priority
    app.register_blueprint(licenses_api.bp)  # floating licence pools
    ws.register(app)
    app.register_blueprint(pyedb_routes.bp)  # PyEDB job-manager routes and JSON shapes
    app.register_blueprint(pyedb_limits.bp)  # PUT /pool/limits onto node limits
    assert pyedb_docs.TAG  # their OpenAPI metadata
    app.register_blueprint(openapi_routes.bp)
    app.register_blueprint(files_api.bp)  # blobs (project uploads) and staged results
    app.register_blueprint(sweeps_api.bp)
    app.register_blueprint(history_api.bp)  # finished jobs, resubmit
    app.register_blueprint(workflows_api.bp)  # jobs that depend on each other by name
    app.register_blueprint(accounts_api.bp)  # accounts, shares, usage
    app.register_blueprint(fairshare_api.bp)  # fair share: usage against shares
    app.register_blueprint(holds_api.bp)  # hold and release jobs and sweeps
    app.register_blueprint(usage_api.bp)  # usage accounting: who used how much
    install_audit(app)
    install_expiry(app)  # the retention sweep
    install_visuals(app)  # progress series, farm series, result summaries, webhooks
    app.extensions[metrics.EXTENSION] = metrics.GatewayMetrics()
    app.register_blueprint(metrics.bp)
    app.register_blueprint(dashboard.bp)  # web UI at /
    return app

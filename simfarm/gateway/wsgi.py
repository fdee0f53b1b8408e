"""WSGI entry point: ``gunicorn simfarm.gateway.wsgi:app``."""

from simfarm.gateway.app import create_app

app = create_app()

"""The Celery configuration of simfarm: one app per process, built from explicit settings
by the process that needs it (the worker's entry point, ``simfarm flower``); nothing is
built at import. The worker adds its task and lifecycle (:mod:`.tasks`, :mod:`.lifecycle`).
"""

from __future__ import annotations

from celery import Celery

from simfarm.common.redis_url import celery_urls
from simfarm.common.settings import Settings
from simfarm.workers import broker
from simfarm.workers.broker import SENTINEL_TRANSPORT, TRANSPORT

RUN_JOB_TASK = "simfarm.run_job"
_FALLBACK_URL = "redis://127.0.0.1:6379/0"


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for long jobs from ``settings``.

    Exactly-once is simfarm's job (leases in the job store), so redelivery after the
    visibility timeout or a warm shutdown is harmless: a stale attempt exits at once.
    """
    # A Sentinel URL becomes kombu's sentinel:// list plus its master_name option.
    url, sentinel = celery_urls(settings.redis_url or _FALLBACK_URL)
    broker.install()  # also for the URLs kombu parses again when it reconnects
    celery = Celery(
        "simfarm",
        broker=url,
        backend=url,
    )
    celery.conf.update(
        # Redis refusing writes is an outage, not fatal (see simfarm.workers.broker)
        broker_transport=SENTINEL_TRANSPORT if sentinel else TRANSPORT,
        broker_connection_max_retries=None,  # reconnect for as long as Redis is away
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s,
                                  **sentinel},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s,
                                          **sentinel},
        broker_connection_retry_on_startup=True,
        # Events cost four PUBLISHes per job: off unless asked for; Flower turns a
        # worker's on while it watches (its periodic enable_events control command).
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        task_track_started=True,
        task_ignore_result=True,
        task_default_queue="simfarm.default",
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        accept_content=["json"],
        task_serializer="json",
    )
    return celery

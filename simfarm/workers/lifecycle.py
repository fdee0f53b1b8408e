"""Starts and stops a worker's background parts with the Celery worker: the node
heartbeat and the dispatcher (a child process, or a thread with ``dispatcher_process``
off); on warm shutdown (SIGTERM, or SIGHUP, after which Celery
starts the worker again in the same process), running jobs are stopped and handed back
to the queue instead of being waited for or lost."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from simfarm.workers.context import WorkerContext
from simfarm.workers.dispatcher import Dispatcher, TaskMessage
from simfarm.workers.dispatcher_process import DispatcherProcess
from simfarm.workers.node_agent import NodeAgent, describe_node, startup_summary

log = logging.getLogger(__name__)


class WorkerLifecycle:
    """The background parts of one worker process, tied to its Celery worker's signals."""

    def __init__(self, ctx: WorkerContext, message: TaskMessage) -> None:
        self.ctx = ctx
        self.message = message
        self.agent: NodeAgent | None = None
        self.dispatcher: Dispatcher | DispatcherProcess | None = None

    def connect(self) -> None:
        """Follow the Celery worker of this process (its signals are process-wide)."""
        # weak=False: the receivers are bound methods of this object, kept by the signals
        worker_ready.connect(self._on_ready, weak=False)
        worker_shutting_down.connect(self._on_shutting_down, weak=False)
        worker_shutdown.connect(self._on_shutdown, weak=False)

    def disconnect(self) -> None:
        worker_ready.disconnect(self._on_ready)
        worker_shutting_down.disconnect(self._on_shutting_down)
        worker_shutdown.disconnect(self._on_shutdown)

    def _on_ready(self, sender: Any = None, **_: Any) -> None:
        ctx = self.ctx
        self._hand_back_on_hangup()
        worker = getattr(sender, "controller", None)  # the consumer's WorkController
        if ctx.settings.log_format == "json" and worker is not None:
            _quiet_shutdown_banners(worker)
        self.agent = NodeAgent(ctx)
        self.agent.start()
        if ctx.settings.worker_dispatch:  # off for workers without the Redis dispatcher user
            self.dispatcher = (DispatcherProcess(ctx.settings, ctx.shutting_down)
                               if ctx.settings.dispatcher_process
                               else Dispatcher(ctx, self.message))
            self.dispatcher.start()
        ctx.jobs.nudge_dispatcher()
        for level, line in startup_summary(ctx, describe_node(ctx)):
            log.log(level, "%s", line)

    def _on_shutting_down(self, **_: Any) -> None:
        self.ctx.shutting_down.set()
        log.info("node %s: shutting down; running jobs go back to the queue",
                 self.ctx.node_name)

    def _on_shutdown(self, **_: Any) -> None:
        for name, part in (("dispatcher", self.dispatcher), ("agent", self.agent)):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # e.g. Redis refusing writes: stop the other parts anyway
                    log.exception("node %s: stopping the %s failed", self.ctx.node_name, name)
        self.dispatcher = self.agent = None

    def _hand_back_on_hangup(self) -> None:
        """Celery's SIGHUP handler stops the worker and starts it again in place, without
        the shutting-down signal: treat it as a shutdown first, so running jobs go back."""
        hangup = getattr(signal, "SIGHUP", None)
        restart = signal.getsignal(hangup) if hangup is not None else None
        if hangup is None or not callable(restart):
            return  # Windows, or a worker on a terminal (Celery installs none there)
        if threading.current_thread() is not threading.main_thread():
            return  # handlers can only be set there (Celery's consumer runs there)

        def on_hangup(signum: int, frame: FrameType | None) -> None:
            self._on_shutting_down()
            restart(signum, frame)

        signal.signal(hangup, on_hangup)


def _quiet_shutdown_banners(worker: Any) -> None:
    """Celery's SIGTERM and SIGQUIT handlers write "worker: Warm shutdown (MainProcess)"
    straight to stdout, which breaks a log of JSON lines: the same handlers without it
    (this worker logs its shutdown itself, :meth:`WorkerLifecycle._on_shutting_down`)."""
    from celery.apps import worker as celery_worker

    celery_worker.install_worker_term_handler(worker, verbose=False)
    celery_worker.install_worker_term_hard_handler(worker, verbose=False)

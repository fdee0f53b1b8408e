"""The dispatcher in a process of its own beside its worker (``dispatcher_process``, on by
default): the worker's threads (Celery's consumer, the runners' lease renewals, the
programs' ``Popen`` and outcome records) and the dispatcher's rounds then stop taking
turns on one interpreter lock, which was most of the time a short job spent.

The worker starts the child when it is ready and hands it its settings as one JSON line
on a pipe it keeps open (not in argv or the environment: they hold the Redis password).
The child runs :class:`~simfarm.workers.dispatcher.Dispatcher` until the pipe closes — the
worker stopping it, or the worker dying however it dies (the kernel closes the pipe) — or
until SIGTERM. A child that dies is started again, after 1 s doubling to 30 s; one
stopped by SIGTERM while its worker stops too (a service manager stopping every process
of the unit at once) is not.

Nothing else changes: the child takes part in the same leader election and every
placement it makes is fenced, so a child still finishing a round after its worker died
can place nothing once another dispatcher leads.

Run as ``python -m simfarm.workers.dispatcher_process`` with the settings on stdin.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import IO

from simfarm.common.settings import Settings

log = logging.getLogger(__name__)

#: restart delays of a child that died: from the first to the longest
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
#: a child that ran this long is taken as healthy: its next restart waits the first delay
HEALTHY_AFTER_S = 60.0
#: how long :meth:`DispatcherProcess.stop` waits for the child before killing it
STOP_WAIT_S = 10.0
#: exit statuses of a child that was told to stop (SIGTERM), not one that failed
STOPPED = frozenset({0, -signal.SIGTERM})


class DispatcherProcess:
    """The dispatcher of one worker, run and kept running as a child process."""

    def __init__(self, settings: Settings, worker_stopping: threading.Event | None = None) -> None:
        self.settings = settings
        # Set when the worker begins to stop: a child that exits then (systemd's SIGTERM
        # reaches the whole group) is not started again.
        self._worker_stopping = worker_stopping or threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="simfarm-dispatcher-watch",
                                         daemon=True)

    def start(self) -> None:
        """Start the child and the thread that starts it again if it dies."""
        with self._lock:
            self._process = self._spawn()
        self._watcher.start()

    def stop(self) -> None:
        """Close the child's pipe (it releases the leader lock and exits), kill it if it
        has not exited within :data:`STOP_WAIT_S`."""
        self._stopping.set()
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        _close(process.stdin)
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            log.warning("node %s: the dispatcher process did not stop; killing it",
                        self.settings.node_name)
            process.kill()
            process.wait()
        log.info("node %s: the dispatcher process stopped with the worker (status %s)",
                 self.settings.node_name, process.returncode)

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "simfarm.workers.dispatcher_process"],
            stdin=subprocess.PIPE)  # stdout and stderr: the worker's (its log)
        assert process.stdin is not None
        process.stdin.write(self.settings.model_dump_json().encode() + b"\n")
        process.stdin.flush()  # and kept open: its end is the child's signal to stop
        log.info("node %s: dispatcher process %d started", self.settings.node_name,
                 process.pid)
        return process

    def _watch(self) -> None:
        delay = RESTART_FIRST_S
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            started = time.monotonic()
            status = process.wait()
            if self._stopping.is_set():
                return
            _close(process.stdin)
            if time.monotonic() - started >= HEALTHY_AFTER_S:
                delay = RESTART_FIRST_S
            # Stopped by SIGTERM (status 0 once its handler is installed, -SIGTERM while it
            # starts): if that was the service manager stopping the whole group, the
            # worker hears of it within moments.
            if status in STOPPED and self._worker_stopping.wait(RESTART_FIRST_S):
                return  # stop() says so when the worker gets there
            log.error("node %s: the dispatcher process exited with status %s; starting it "
                      "again in %.0f s", self.settings.node_name, status, delay)
            if self._stopping.wait(delay):
                return
            delay = min(RESTART_MAX_S, delay * 2)
            with self._lock:
                if self._stopping.is_set() or self._worker_stopping.is_set():
                    return
                try:
                    self._process = self._spawn()
                except OSError:
                    log.exception("node %s: starting the dispatcher process failed",
                                  self.settings.node_name)


def _close(pipe: IO[bytes] | None) -> None:
    if pipe is not None:
        try:
            pipe.close()
        except OSError:  # the child is gone: nothing to tell it
            pass


def main() -> None:
    """The child: settings from the first line of stdin, the dispatcher until stdin ends
    or SIGTERM arrives."""
    # Ctrl-C on a terminal reaches the whole group: the worker stops this child itself,
    # after its own jobs are handed back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = Settings.model_validate_json(sys.stdin.buffer.readline())
    from simfarm.common.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format, settings.node_name)
    from simfarm.workers.app import make_celery
    from simfarm.workers.context import WorkerContext
    from simfarm.workers.dispatcher import Dispatcher
    from simfarm.workers.tasks import task_message

    ctx = WorkerContext.connected(settings)  # it runs no job: no runners
    done = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    # stdin ends when the worker closes it or dies: read it in a thread, so SIGTERM is
    # handled at once in this one
    def follow_pipe() -> None:
        sys.stdin.buffer.read()
        done.set()

    threading.Thread(target=follow_pipe, name="simfarm-dispatcher-pipe", daemon=True).start()
    dispatcher = Dispatcher(ctx, task_message(make_celery(settings)))
    dispatcher.start()
    ctx.jobs.nudge_dispatcher()
    while not done.wait(1.0):
        pass
    dispatcher.stop()
    log.info("node %s: dispatcher process stopped", settings.node_name)


if __name__ == "__main__":
    main()

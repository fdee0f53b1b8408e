"""Runs a command job as a local subprocess: no shell, own process group, log streaming
and timeout; cancel, shutdown and the lease are the attempt supervisor's (:mod:`.attempt`)."""

from __future__ import annotations

import functools
import logging
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

from simfarm.common.job_paths import node_roots
from simfarm.common.models import Job
from simfarm.common.paths import PathRejected, resolve_within
from simfarm.common.states import JobState
from simfarm.workers.attempt import AttemptSupervisor, StopKind
from simfarm.workers.context import WorkerContext
from simfarm.workers.outcome import Outcome
from simfarm.workers.process_tree import kill_tree, popen_group_kwargs

log = logging.getLogger(__name__)

TICK_S = 0.1
MAX_LINE = 8192
MAX_BATCH = 500
MAX_UNSENT = 50_000  # output lines kept while Redis is unreachable


def _read_lines(stream: IO[bytes], name: str, sink: queue.Queue[tuple[str, str] | None]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            sink.put((name, raw.decode("utf-8", errors="replace").rstrip("\r\n")[:MAX_LINE]))
    finally:
        sink.put(None)


def job_workdir(ctx: WorkerContext, job: Job) -> Path:
    """The job's working directory: its own ``cwd`` (checked against this node's allowed
    roots with symlinks resolved) or a fresh folder under the state dir."""
    if job.spec.cwd:
        return resolve_within(job.spec.cwd, node_roots(ctx.settings), field="cwd")
    path = ctx.settings.state_dir / "jobs" / job.id
    path.mkdir(parents=True, exist_ok=True)
    return path


class LocalRunner:
    """Runs ``job.spec.argv`` on this machine and reports an :class:`Outcome`."""

    def __init__(self, supervisor: AttemptSupervisor, job: Job) -> None:
        self.supervisor = supervisor
        self.ctx = supervisor.ctx
        self.job = job
        self.lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._unsent: list[tuple[str, dict[str, object]]] = []

    def argv(self) -> list[str]:
        """The command to run; subclasses (HFSS) build their own."""
        return list(self.job.spec.argv)

    def environment(self) -> dict[str, str]:
        """The child's environment: the worker's (without simfarm's own settings, which
        hold the Redis URL and tokens), the job's extras and the job id."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SIMFARM_")}
        env.update(self.job.spec.env)
        env["SIMFARM_JOB_ID"] = self.job.id
        return env

    def on_line(self, stream: str, line: str) -> list[tuple[str, dict[str, object]]]:
        """Events for one output line; subclasses add parsed progress."""
        return [("log", {"stream": stream, "line": line})]

    def run(self) -> Outcome:
        job_id = self.job.id
        try:
            cwd = job_workdir(self.ctx, self.job)
        except PathRejected as exc:
            return Outcome(JobState.FAILED, reason=f"working directory refused: {exc}")
        except OSError as exc:
            return Outcome(JobState.FAILED, reason=f"cannot create working directory: {exc}")
        if not cwd.is_dir():
            return Outcome(JobState.FAILED, reason=f"working directory does not exist: {cwd}")
        argv = self.argv()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                **popen_group_kwargs(),
            )
        except FileNotFoundError:
            return Outcome(JobState.FAILED, reason=f"executable not found: {argv[0]}")
        except PermissionError:
            return Outcome(JobState.FAILED, reason=f"executable not runnable: {argv[0]}")
        except OSError as exc:
            return Outcome(JobState.FAILED, reason=f"cannot start {argv[0]}: {exc}")
        if self.ctx.orphans is not None:  # killed if this worker dies before reaping it
            self.ctx.orphans.track(proc.pid)
        log.info("job %s: started pid %d: %s", job_id, proc.pid, argv)
        self.supervisor.send(
            functools.partial(self.ctx.jobs.update_fields, job_id, {"pid": proc.pid}))
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(
                target=_read_lines, args=(proc.stdout, "stdout", self.lines), daemon=True
            ),
            threading.Thread(
                target=_read_lines, args=(proc.stderr, "stderr", self.lines), daemon=True
            ),
        ]
        for reader in readers:
            reader.start()
        return self._supervise(proc, readers)

    def _supervise(self, proc: subprocess.Popen[bytes], readers: list[threading.Thread]) -> Outcome:
        """Stream the output until the process ends; stop its tree on a timeout or when
        the attempt's supervisor says so (cancel, shutdown, lease lost or run out)."""
        job_id = self.job.id
        settings = self.ctx.settings
        timeout_s = self.job.spec.timeout_s
        deadline = time.monotonic() + timeout_s if timeout_s else None
        open_streams = len(readers)
        stop: Outcome | None = None
        while True:
            open_streams -= self._flush(timeout=TICK_S)
            if proc.poll() is not None and open_streams <= 0:
                break
            if stop is not None:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                stop = Outcome(JobState.FAILED, reason=f"timeout: exceeded {timeout_s:g} s")
            elif (ended := self.supervisor.check()) is not None:
                stop = ended.outcome()
                if ended.kind is StopKind.LEASE_EXPIRED:
                    stop.reason = f"{ended.reason}; stopped so the job can run elsewhere"
            if stop is not None:
                log.info("job %s: stopping process tree (%s)", job_id, stop.reason)
                kill_tree(proc, settings.kill_grace_s, job_id)
        code = proc.wait()
        if self.ctx.orphans is not None:
            self.ctx.orphans.untrack(proc.pid)
        for reader in readers:
            reader.join(timeout=1)
        self._flush(timeout=0)
        if stop is not None:
            stop.exit_code = code
            return stop
        return self.exit_outcome(code)

    def exit_outcome(self, code: int) -> Outcome:
        """The outcome of a program that ended by itself; subclasses (HFSS) refine it."""
        if code == 0:
            return Outcome(JobState.COMPLETED, exit_code=0)
        return Outcome(JobState.FAILED, exit_code=code, reason=f"exit code {code}")

    def _flush(self, timeout: float) -> int:
        """Send waiting output lines as events in one round trip; returns how many
        output streams reached their end."""
        batch = self._unsent
        self._unsent = []
        closed = 0
        try:
            item = self.lines.get(timeout=timeout) if timeout else self.lines.get_nowait()
            while True:
                if item is None:
                    closed += 1
                else:
                    batch.extend(self.on_line(*item))
                if len(batch) >= MAX_BATCH:
                    break
                item = self.lines.get_nowait()
        except queue.Empty:
            pass
        if batch:
            sent = self.supervisor.call(
                functools.partial(self.ctx.jobs.append_events, self.job.id, batch))
            if sent is None:
                # Keep the lines for the next flush (bounded: the oldest go first).
                self._unsent = batch[-MAX_UNSENT:]
        return closed


def run_local(supervisor: AttemptSupervisor, job: Job) -> Outcome:
    """The ``command`` runner of a worker that runs jobs itself."""
    return LocalRunner(supervisor, job).run()

"""Runs a command job as a local subprocess: no shell, own process group, log streaming
and timeout; cancel, shutdown and the lease are the attempt supervisor's (:mod:`.attempt`).

The supervising thread reads the child's output itself on POSIX (a selector over both
pipes), and through one reader thread per pipe on Windows (its pipes cannot be
selected): a short job costs no thread and no round trip to Redis beyond its claim and
its outcome (its pid is written only once it runs longer than a tick, or with its first
output).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import selectors
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from simfarm.common.job_paths import node_roots
from simfarm.common.models import Job
from simfarm.common.paths import PathRejected, resolve_within
from simfarm.common.states import JobState
from simfarm.workers.attempt import AttemptSupervisor, StopKind
from simfarm.workers.context import WorkerContext
from simfarm.workers.job_account import job_account, job_environment
from simfarm.workers.orphan_guard import JobNote
from simfarm.workers.outcome import Outcome, exit_status_outcome
from simfarm.workers.process_tree import kill_tree, popen_group_kwargs

log = logging.getLogger(__name__)

TICK_S = 0.1
MAX_LINE = 8192
MAX_BATCH = 500
MAX_UNSENT = 50_000  # output lines kept while Redis is unreachable


def _line(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")[:MAX_LINE]


def _read_lines(stream: IO[bytes], name: str, sink: queue.Queue[tuple[str, str] | None]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            sink.put((name, _line(raw)))
    finally:
        sink.put(None)


class _Pipes:
    """The child's stdout and stderr, read line by line into ``sink``."""

    def __init__(self, proc: subprocess.Popen[bytes],
                 sink: queue.Queue[tuple[str, str] | None]) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.sink = sink
        self.open = 2
        self._threads: list[threading.Thread] = []
        self._selector: selectors.BaseSelector | None = None
        self._partial: dict[str, bytearray] = {}
        self._skipping: set[str] = set()
        if os.name == "posix":
            self._selector = selectors.DefaultSelector()
            for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                self._selector.register(stream, selectors.EVENT_READ, name)
                self._partial[name] = bytearray()
        else:
            for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                thread = threading.Thread(target=_read_lines, args=(stream, name, sink),
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def wait(self, timeout: float) -> list[tuple[str, str] | None]:
        """Wait up to ``timeout`` for output (the selector puts it in ``sink``; a reader
        thread's first item comes back, taken from ``sink``); once both pipes are at
        their end, wait that long for the process instead."""
        if self._selector is not None and self.open:
            for key, _ in self._selector.select(timeout):
                self._read(key.fileobj, key.data)  # type: ignore[arg-type]
        elif self._threads and self.open:
            try:
                return [self.sink.get(timeout=timeout)]
            except queue.Empty:
                pass
        else:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        return []

    def ended(self) -> None:
        """A reader thread's end-of-stream marker was taken from ``sink``."""
        self.open -= 1

    def _read(self, stream: IO[bytes], name: str) -> None:
        data = os.read(stream.fileno(), 65536)
        buf = self._partial[name]
        if not data:
            assert self._selector is not None
            self._selector.unregister(stream)
            self.open -= 1
            if buf and name not in self._skipping:
                self.sink.put((name, _line(bytes(buf))))
            buf.clear()
            return
        buf += data
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            if name in self._skipping:  # the rest of a line already sent cut short
                self._skipping.discard(name)
            else:
                self.sink.put((name, _line(bytes(buf[: end + 1]))))
            del buf[: end + 1]
        if len(buf) > 4 * MAX_LINE and name not in self._skipping:
            self.sink.put((name, _line(bytes(buf))))  # a line that long is cut anyway
            self._skipping.add(name)
        if name in self._skipping:
            buf.clear()

    def close(self) -> None:
        """Done: join the reader threads, if any."""
        for thread in self._threads:
            thread.join(timeout=1)
        if self._selector is not None:
            self._selector.close()


def job_workdir(ctx: WorkerContext, job: Job) -> Path:
    """The job's working directory: its own ``cwd`` (checked against this node's allowed
    roots with symlinks resolved) or a fresh folder under the state dir."""
    if job.spec.cwd:
        return resolve_within(job.spec.cwd, node_roots(ctx.settings), field="cwd")
    path = ctx.settings.state_dir / "jobs" / job.id
    path.mkdir(parents=True, exist_ok=True)
    account = job_account(ctx.settings)
    if account is not None:
        os.chmod(path.parent, 0o711)  # jobs cannot list each other's folders
        os.chmod(path, 0o700)
        account.give(path)
    return path


class LocalRunner:
    """Runs ``job.spec.argv`` on this machine and reports an :class:`Outcome`."""

    #: the program's exit status is the attempt's whole outcome (:meth:`exit_outcome`
    #: not refined), so the orphan guard may record it when this worker died
    outcome_is_exit_status = True

    def __init__(self, supervisor: AttemptSupervisor, job: Job) -> None:
        self.supervisor = supervisor
        self.ctx = supervisor.ctx
        self.job = job
        self.lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._unsent: list[tuple[str, dict[str, object]]] = []
        self._pipes: _Pipes | None = None
        self._pid: int | None = None
        self._note: JobNote | None = None
        self._program = ""
        self.account = job_account(self.ctx.settings)

    def argv(self) -> list[str]:
        """The command to run; subclasses (HFSS) build their own."""
        return list(self.job.spec.argv)

    def environment(self) -> dict[str, str]:
        """The child's environment: what ``job_env_inherit`` lets through from the
        worker's (never its credentials), the account's, the job's extras and its id."""
        return job_environment(self.ctx.settings, self.job.spec.env, self.job.id,
                               self.account, inherited=self.ctx.inherited_environment())

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
        self._program = argv[0]
        env = self.environment()
        command, extra = argv, dict[str, Any](stdin=subprocess.DEVNULL)
        orphans = self.ctx.orphans
        if orphans is not None:
            # how it ends is noted for the guard, should this worker die meanwhile
            self._note = orphans.note(job_id, self.supervisor.number,
                                      recordable=self.outcome_is_exit_status and (
                                          self.job.spec.files is None
                                          or self.job.spec.files.mode != "staged"))
            wrapped = self._note.wrap(argv, env=env, cwd=cwd, account=self.account)
            if wrapped is None:
                self._note.started()
                orphans.forget(job_id, self.supervisor.number)
                self._note = None
            else:
                command = wrapped[0]
                extra.update(wrapped[1])
        try:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                **extra,
                **popen_group_kwargs(),
                **(self.account.popen_kwargs() if self.account else {}),
            )
        except OSError as exc:
            return self._not_started(argv[0], exc)
        finally:
            if self._note is not None:
                self._note.started()
        if orphans is not None:  # killed if this worker dies before reaping it
            orphans.track(proc.pid)
        log.info("job %s: started pid %d: %s", job_id, proc.pid, argv)
        self._pid = proc.pid  # written with the first output, or after the first tick
        self._pipes = _Pipes(proc, self.lines)
        return self._supervise(proc)

    @staticmethod
    def _not_started(executable: str, exc: OSError | tuple[str, str]) -> Outcome:
        """The program could not be started (``exc``, or its class name and message as
        the exit note tells them)."""
        kind, message = (type(exc).__name__, str(exc)) if isinstance(exc, OSError) else exc
        if kind == "FileNotFoundError":
            return Outcome(JobState.FAILED, reason=f"executable not found: {executable}")
        if kind == "PermissionError":
            return Outcome(JobState.FAILED, reason=f"executable not runnable: {executable}")
        return Outcome(JobState.FAILED, reason=f"cannot start {executable}: {message}")

    def _supervise(self, proc: subprocess.Popen[bytes]) -> Outcome:
        """Stream the output until the process ends; stop its tree on a timeout or when
        the attempt's supervisor says so (cancel, shutdown, lease lost or run out)."""
        job_id = self.job.id
        settings = self.ctx.settings
        timeout_s = self.job.spec.timeout_s
        deadline = time.monotonic() + timeout_s if timeout_s else None
        pipes = self._pipes
        assert pipes is not None
        stop: Outcome | None = None
        # A program that closes its output first is seen running for a moment after: its
        # pid is worth a write only once it has run a tick (or with its first output).
        pid_due = time.monotonic() + TICK_S
        while True:
            self._flush(timeout=TICK_S)
            if proc.poll() is not None and pipes.open <= 0:
                break
            if self._pid is not None and time.monotonic() >= pid_due:  # say which process
                pid, self._pid = self._pid, None
                self.supervisor.send(functools.partial(self.ctx.jobs.set_pid, job_id, pid))
            if stop is not None:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                stop = Outcome(JobState.FAILED, reason=f"timeout: exceeded {timeout_s:g} s",
                               timed_out=True)
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
        pipes.close()
        self._flush(timeout=0)
        if stop is not None:
            stop.exit_code = code
            return stop
        if self._note is not None:
            note = self._note.read()
            if note.spawn_error is not None:
                return self._not_started(self._program, note.spawn_error)
        return self.exit_outcome(code)

    def exit_outcome(self, code: int) -> Outcome:
        """The outcome of a program that ended by itself; subclasses (HFSS) refine it
        (and then :attr:`outcome_is_exit_status` is False)."""
        return exit_status_outcome(code)

    def _flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` for output (or, once the pipes ended, for the process)
        and send the waiting lines as events in one round trip."""
        taken = self._pipes.wait(timeout) if timeout and self._pipes is not None else []
        batch = self._unsent
        self._unsent = []
        try:
            while len(batch) < MAX_BATCH:
                item = taken.pop() if taken else self.lines.get_nowait()
                if item is None:
                    if self._pipes is not None:
                        self._pipes.ended()
                else:
                    batch.extend(self.on_line(*item))
        except queue.Empty:
            pass
        if batch:
            sent = self.supervisor.call(
                functools.partial(self.ctx.jobs.append_events, self.job.id, batch, self._pid))
            if sent is None:
                # Keep the lines for the next flush (bounded: the oldest go first).
                self._unsent = batch[-MAX_UNSENT:]
            else:
                self._pid = None


def run_local(supervisor: AttemptSupervisor, job: Job) -> Outcome:
    """The ``command`` runner of a worker that runs jobs itself."""
    return LocalRunner(supervisor, job).run()

"""Orphan guard: when a worker process dies without cleaning up (kill -9, power loss of the
Python process, OOM killer), the solvers it started must die too, or a re-queued job
would run twice at once — once as the orphan, once on the node that took it over — and a
job that ended in the moments the worker was gone must be recorded as it ended, or it
would run to its end twice.

The worker records the process group of every job it starts as a file in a folder of its
own, and starts the job's program through a note writer (:mod:`.note_writer`, the note:
:mod:`.exit_note`), which writes how the program
ended to a note in ``notes/`` there. A small guard process, started with the worker,
polls the worker's pid and, when the worker is gone (long before the worker's heartbeat
expires and the dispatcher hands the job to another node):

1. records the outcome of every attempt whose program had ended by itself by then —
   the exit status the note holds, fenced like the worker's own record (only the
   attempt's number, on this node, still ``running``): it is not run again;
2. gives the programs still running ``orphan_finish_s`` (0.5 s) to end by themselves —
   one that was writing its last results when the worker died is then recorded as in 1.,
   not stopped in its last moments and run again;
3. kills every recorded group still alive (SIGTERM, then SIGKILL) — the note writer
   notes its pid first, so a program the worker was starting when it died is found too:
   those attempts did not finish, and the dispatcher runs them again (their retries permitting).

What it cannot know it does not guess: a program that ends in the same instant the
guard stops it, an attempt whose results a worker still had to send back (staged files),
an HFSS solve (its outcome is read from AEDT's log, not the exit status) and the jobs of a
machine that lost power go back to the queue — the at-least-once cases of
docs/operations.md.

Run as ``python -m simfarm.workers.orphan_guard <worker pid> <folder>`` with the worker's
settings as JSON on stdin.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis

from simfarm.common.errors import IllegalTransition, JobNotFound, StaleAttempt
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from simfarm.common.store.leases import LeaseEnd
from simfarm.workers import exit_note, note_writer
from simfarm.workers.context import connect
from simfarm.workers.job_account import JobAccount
from simfarm.workers.outcome import exit_status_outcome
from simfarm.workers.process_tree import IS_WINDOWS, popen_group_kwargs
from simfarm.workers.redis_guard import retry_while_redis_away

log = logging.getLogger(__name__)

POLL_S = 0.2
NOTES = "notes"
#: how long the guard tries to record outcomes while Redis cannot be reached
RECORD_RETRY_S = 30.0
#: how long the guard's SIGTERM has before SIGKILL
KILL_GRACE_S = 2.0
#: how long the guard waits for a note writer the worker was starting to note its pid
START_WAIT_S = 5.0
#: how long the guard waits for a note writer between programs (see :func:`_between`)
SETTLE_S = 0.5
#: how long programs get to end by themselves without settings (``orphan_finish_s``)
FINISH_S: float = Settings.model_fields["orphan_finish_s"].default


@dataclass
class JobNote:
    """The exit note of one attempt's program (see :mod:`.exit_note`)."""

    path: Path
    fd: int | None

    def wrap(self, argv: list[str], *, env: Mapping[str, str], cwd: Path,
             account: JobAccount | None) -> tuple[list[str], dict[str, Any]] | None:
        """The command that runs ``argv`` (in ``cwd`` with ``env``, as ``account``)
        under a note writer, and the extra ``subprocess.Popen`` arguments it needs (the
        note's descriptor, on POSIX); None: no writer can (see :mod:`.note_writer`)."""
        return note_writer.wrap(argv, str(self.path), self.fd, env=env, cwd=cwd,
                                account=account)

    def started(self) -> None:
        """The program started (or could not): the worker's descriptor is not needed."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def read(self) -> exit_note.Note:
        """What the note says now."""
        try:
            return exit_note.read_note(self.path.read_bytes())
        except OSError:
            return exit_note.Note({})


class OrphanGuard:
    """The guard process of this worker process and the folder of job processes it covers.

    The folder holds one empty file per job process, named by its pid (the leader of its
    own group/session), and the notes of the attempts not yet recorded by the worker
    (``notes/<job id>.<attempt>``); the guard exits when the folder disappears.
    """

    def __init__(self, folder: Path, process: subprocess.Popen[bytes]) -> None:
        self.folder = folder
        self.process = process

    @classmethod
    def start(cls, folder: Path, settings: Settings) -> OrphanGuard:
        """Start the guard for this process; jobs recorded with :meth:`track` are covered,
        outcomes recorded through ``settings``' Redis."""
        (folder / NOTES).mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f"{folder.name}.log", "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "simfarm.workers.orphan_guard", str(os.getpid()),
                 str(folder)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log_file,
                **popen_group_kwargs(),  # its own group: killing the worker's group spares it
            )
        assert process.stdin is not None
        process.stdin.write(settings.model_dump_json().encode())  # not in argv: secrets
        process.stdin.close()
        return cls(folder, process)

    def note(self, job_id: str, attempt: int, *, recordable: bool) -> JobNote:
        """A new exit note for one attempt's program; ``recordable``: its exit status is
        its whole outcome (a plain command job, no staged results to send back), so the
        guard may record it."""
        path = self.folder / NOTES / f"{job_id}.{attempt}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
                     | getattr(os, "O_BINARY", 0), 0o600)
        os.write(fd, exit_note.header(job=job_id, attempt=attempt, record=int(recordable)))
        if IS_WINDOWS:  # no descriptor passing: the note writer opens the path
            os.close(fd)
            return JobNote(path, None)
        return JobNote(path, fd)

    def forget(self, job_id: str, attempt: int) -> None:
        """The worker recorded (or gave up) the attempt's outcome itself."""
        (self.folder / NOTES / f"{job_id}.{attempt}").unlink(missing_ok=True)

    def track(self, pid: int) -> None:
        """Record a job's process (the leader of its own group/session)."""
        (self.folder / str(pid)).touch()

    def untrack(self, pid: int) -> None:
        """The job's process ended and was reaped by the worker."""
        (self.folder / str(pid)).unlink(missing_ok=True)

    def stop(self) -> None:
        """Clean shutdown: the guard exits when its folder disappears."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        (self.folder.parent / f"{self.folder.name}.log").unlink(missing_ok=True)


def _signal_groups(pids: list[int], sig: int) -> list[psutil.Process]:
    """Send ``sig`` to each job's group and process tree; the processes still there."""
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        if not IS_WINDOWS:
            try:
                os.killpg(pid, sig)  # the session/group the job started
            except (ProcessLookupError, PermissionError):
                pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return procs


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is left (one whose parent died is no longer in
    the tree of the group's leader)."""
    if IS_WINDOWS:
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_groups(pids: list[int]) -> None:
    """Stop the jobs' groups: SIGTERM, sent again every 0.1 s (a process between fork and
    exec when the first arrives never sees it: it would run on), SIGKILL after 2 s."""
    deadline = time.monotonic() + KILL_GRACE_S
    while True:
        procs = _signal_groups(pids, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=0.1)
        if not alive and not any(_group_alive(pid) for pid in pids):
            return
        if time.monotonic() >= deadline:
            _signal_groups(pids, getattr(signal, "SIGKILL", signal.SIGTERM))
            return


def _notes(folder: Path) -> list[exit_note.Note]:
    return [JobNote(path, None).read() for path in sorted((folder / NOTES).glob("*"))]


def _running(notes: list[exit_note.Note], ended: bool = False) -> list[int]:
    """The note writers' pids of programs not ended (an ended program's pid may belong
    to another process by now); with ``ended``, of those whose notes say they ended."""
    return [int(n.fields["pid"]) for n in notes
            if "pid" in n.fields and (n.ended_at is not None) == ended]


def _unstarted(folder: Path, wait_s: float) -> list[int]:
    """Pids of note writers that were being started when the worker died (their notes
    had no pid yet), waiting up to ``wait_s`` for each to note its pid."""
    deadline = time.monotonic() + wait_s
    while True:
        notes = _notes(folder)
        if all("pid" in n.fields or n.ended_at is not None for n in notes) \
                or time.monotonic() >= deadline:
            return _running(notes)
        time.sleep(0.05)


def _between(note_writers: list[int], folder: Path, wait_s: float) -> None:
    """Wait up to ``wait_s`` while one of these note writers has no program running
    (none started yet, or it ended and its note is not written yet: under load that
    takes tens of milliseconds). A SIGTERM in that gap would make a program that ended
    by itself look stopped, and the job would run again."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        pending = set(_running(_notes(folder)))
        waiting = False
        for pid in note_writers:
            if pid not in pending:
                continue  # its note says it ended, or it is not a note writer
            try:
                children = psutil.Process(pid).children()
                waiting = waiting or not any(c.status() != psutil.STATUS_ZOMBIE
                                             for c in children)
            except psutil.NoSuchProcess:
                continue
        if not waiting:
            return
        time.sleep(0.01)


def _let_finish(note_writers: list[int], folder: Path, wait_s: float) -> None:
    """Wait up to ``wait_s`` until the notes of these note writers all say their program
    ended: a program that ends in that time ended by itself, and its outcome is recorded
    instead of the job running again. (A zombie program is not enough: its writer reaps
    it and notes it a moment later, and a SIGTERM in that moment reads as a stop.)"""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not set(_running(_notes(folder))) & set(note_writers):
            return
        time.sleep(0.02)


def _exited(pid: int) -> bool:
    """Whether the program under note writer ``pid`` has exited and is not reaped yet
    (a zombie): it ended by itself, whatever its note will say."""
    try:
        children = psutil.Process(pid).children()
        return bool(children) and all(c.status() == psutil.STATUS_ZOMBIE for c in children)
    except psutil.Error:
        return False


def _note_clock() -> float:
    """Now on the notes' clock, in whole hundredths (the sh writer's): a note that says
    it ended before this ended before now."""
    return math.floor(exit_note.clock() * 100) / 100


def _signal_each(pids: list[int], ended: Collection[int] = ()) -> dict[int, float]:
    """SIGTERM each job's group, checking just before whether its program has exited
    by itself (a zombie, or ``ended``: its note says so; then it is not signalled); when
    each group was signalled (the notes' clock; never: infinity)."""
    signalled: dict[int, float] = {}
    for pid in pids:
        if pid in ended or _exited(pid):
            signalled[pid] = float("inf")
            continue
        signalled[pid] = _note_clock()
        _signal_groups([pid], signal.SIGTERM)
    return signalled


def record_ended(store: JobStore, node: str, note: exit_note.Note) -> bool:
    """Record the outcome of an attempt whose program ended after its worker died, as
    its worker would have: only while the attempt is still the job's, running on this
    node. True when it was recorded."""
    job_id, attempt = note.fields.get("job", ""), int(note.fields.get("attempt", "0"))
    if note.fields.get("record") != "1" or note.code is None:
        log.info("job %s: attempt %d ended, its outcome is not the exit status alone: "
                 "left to the dispatcher", job_id, attempt)
        return False
    target, fields, event = exit_status_outcome(note.code).recorded()
    event["recorded_by"] = f"orphan guard of {node}"
    move = functools.partial(
        store.transition, job_id, target, expect_attempt=attempt, expect_node=node,
        sources=[JobState.RUNNING], lease=LeaseEnd(), fields=fields, event=event, nudge=True)
    try:
        retry_while_redis_away(move, RECORD_RETRY_S)
    except (StaleAttempt, IllegalTransition, JobNotFound) as exc:
        log.info("job %s: outcome of attempt %d not recorded: %s", job_id, attempt, exc)
        return False
    except redis.RedisError as exc:
        log.error("job %s: outcome of attempt %d lost, Redis unavailable: %s", job_id,
                  attempt, exc)
        return False
    log.warning("job %s: attempt %d ended after its worker died: recorded %s (exit code %s)",
                job_id, attempt, target.value, note.code)
    return True


def _worker_gone(worker: psutil.Process | None) -> bool:
    try:
        return (worker is None or not worker.is_running()
                or worker.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def guard(worker_pid: int, folder: Path, settings: Settings | None) -> None:
    """Wait for the worker to die (then record what ended and kill the rest of its jobs)
    or for the folder to go away."""
    try:
        worker = psutil.Process(worker_pid)
    except psutil.NoSuchProcess:
        worker = None
    while folder.is_dir():
        if _worker_gone(worker):
            _stop_jobs(worker_pid, folder, settings)
            return
        time.sleep(POLL_S)


def _stop_jobs(worker_pid: int, folder: Path, settings: Settings | None) -> None:
    """The worker is gone: record the outcome of each program that ended by itself
    (before the guard signalled its group), stop the others."""
    pids = {int(p.name) for p in folder.iterdir() if p.name.isdigit()}
    pids |= set(_running(_notes(folder)))
    _between(sorted(pids), folder, SETTLE_S)
    finish_s = settings.orphan_finish_s if settings is not None else FINISH_S
    if finish_s > 0 and pids:
        log.info("worker %d gone: %d job process(es) get %.1f s to end by themselves",
                 worker_pid, len(pids), finish_s)
        _let_finish(sorted(pids), folder, finish_s)
    signalled = _signal_each(sorted(pids), set(_running(_notes(folder), ended=True)))
    store = (JobStore.for_settings(connect(settings), settings)
             if settings is not None else None)
    recorded: set[str] = set()

    def record(notes: list[exit_note.Note], signalled: dict[int, float],
               last: bool = False) -> None:
        for note in notes:
            key = f"{note.fields.get('job')}.{note.fields.get('attempt')}"
            pid = int(note.fields.get("pid", "0"))
            if note.ended_at is None or key in recorded:
                continue
            if note.ended_at >= signalled.get(pid, float("inf")):
                if last:
                    log.info("job %s: attempt %s stopped: its program ended %.3f s after "
                             "the guard's SIGTERM (exit code %s); left to the dispatcher",
                             note.fields.get("job"), note.fields.get("attempt"),
                             note.ended_at - signalled[pid], note.code)
                continue
            recorded.add(key)
            if store is not None:
                record_ended(store, settings.node_name if settings else "", note)

    # What ended before the kill ended by itself: its note says how. Recorded before the
    # dispatcher may hand it on, while the kill goes on.
    record(_notes(folder), signalled)
    _kill_groups(sorted(pids))
    # then the programs the worker had no time to note (it died starting them)
    late = set(_unstarted(folder, START_WAIT_S)) - pids
    late_at = _note_clock()
    if late:
        _kill_groups(sorted(late))
    # Notes written meanwhile: a program that ended before its group was signalled (one
    # the worker was starting may have run to its end while the guard waited) ended by
    # itself; every group signalled is gone now, so its note is complete.
    record(_notes(folder), {**signalled, **dict.fromkeys(late, late_at)}, last=True)
    log.info("worker %d gone: stopped %d job process(es), %d ended by themselves",
             worker_pid, len(pids | late), len(recorded))
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """The guard process: settings from stdin (JSON), then :func:`guard`."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s orphan guard: %(message)s")
    data = sys.stdin.read()
    settings = Settings.model_validate_json(data) if data.strip() else None
    guard(int(sys.argv[1]), Path(sys.argv[2]), settings)


if __name__ == "__main__":
    main()

"""One status thread per backend: batched, adaptive polling of every watched job.

Each cycle runs one status command for all jobs (``squeue -j a,b,c``, ``bjobs a b c``...).
The interval starts short, grows while nothing changes and snaps back when something
does or a job is added. A failing status command never fails a job: the poller backs
off, reports the problem to every watched job and keeps going. A job that leaves the
queue is settled from accounting or its exit-code file; only when neither record
appears within ``vanish_grace_s`` is it reported failed, with that reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from simfarm.workers.schedulers.base import ClusterBackend
from simfarm.workers.schedulers.errors import CommandError
from simfarm.workers.schedulers.types import ClusterState, ClusterStatus

log = logging.getLogger(__name__)

UpdateCallback = Callable[[ClusterStatus], None]
ProblemCallback = Callable[[str], None]


@dataclass
class PollerSettings:
    """Timing of the status thread (seconds)."""

    min_interval_s: float = 5.0
    max_interval_s: float = 60.0
    growth: float = 1.5
    first_poll_delay_s: float = 1.0
    max_error_backoff_s: float = 120.0
    vanish_grace_s: float = 120.0


@dataclass
class _Watched:
    native_id: str
    job_dir: Path
    on_update: UpdateCallback
    on_problem: ProblemCallback | None
    added: float = field(default_factory=time.monotonic)
    last: ClusterStatus | None = None
    seen: bool = False
    missing_since: float | None = None
    cancel_requested: bool = False


class ClusterPoller:
    """Watches cluster jobs of one backend and reports their state changes."""

    def __init__(self, backend: ClusterBackend, settings: PollerSettings | None = None) -> None:
        self.backend = backend
        self.settings = settings or PollerSettings()
        self._jobs: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._interval = self.settings.min_interval_s
        self._errors = 0
        self.polls = 0

    # ------------------------------------------------------------- public API
    def start(self) -> None:
        """Start the status thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"simfarm-{self.backend.kind}-poller")
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the status thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def watch(self, native_id: str, job_dir: Path, on_update: UpdateCallback,
              on_problem: ProblemCallback | None = None) -> None:
        """Report state changes of ``native_id`` to ``on_update`` until it ends."""
        with self._lock:
            self._jobs[native_id] = _Watched(native_id, job_dir, on_update, on_problem)
            self._interval = self.settings.min_interval_s
        self._wake.set()

    def unwatch(self, native_id: str) -> None:
        """Stop reporting on ``native_id``."""
        with self._lock:
            self._jobs.pop(native_id, None)

    def watching(self) -> list[str]:
        """Native ids being watched."""
        with self._lock:
            return list(self._jobs)

    def cancel(self, native_id: str) -> None:
        """Cancel through the backend and poll soon to see the result."""
        with self._lock:
            watched = self._jobs.get(native_id)
            if watched is not None:
                watched.cancel_requested = True
        self.backend.cancel(native_id)
        with self._lock:
            self._interval = self.settings.min_interval_s
        self._wake.set()

    # ------------------------------------------------------------------ cycle
    def poll_once(self) -> bool:
        """Run one status cycle; returns True if any watched job changed."""
        with self._lock:
            jobs = dict(self._jobs)
        if not jobs:
            return False
        self.polls += 1
        try:
            answer = self.backend.status(list(jobs))
        except CommandError as exc:
            self._errors += 1
            message = (f"{self.backend.kind} status check failed ({self._errors} in a row), "
                       f"retrying: {exc}")
            log.warning("%s jobs %s: %s", self.backend.kind, ",".join(jobs), message)
            if self._errors == 1 or self._errors % 10 == 0:
                self._problem(jobs.values(), message)
            return False
        if self._errors:
            self._problem(jobs.values(), f"{self.backend.kind} status check works again "
                                         f"after {self._errors} failed attempt(s)")
            self._errors = 0
        changed = False
        missing: list[_Watched] = []
        for native_id, watched in jobs.items():
            if native_id not in answer:
                missing.append(watched)
                continue
            watched.seen = True
            watched.missing_since = None
            status = answer[native_id]
            if status is None:
                continue
            changed |= self._deliver(watched, status)
        if missing:
            changed |= self._settle_missing(missing)
        return changed

    def _settle_missing(self, missing: list[_Watched]) -> bool:
        now = time.monotonic()
        try:
            found = self.backend.resolve_vanished([(w.native_id, w.job_dir) for w in missing])
        except CommandError as exc:
            log.warning("%s: cannot look up finished jobs yet: %s", self.backend.kind, exc)
            found = {}
        changed = False
        for watched in missing:
            status = found.get(watched.native_id)
            if status is not None:
                changed |= self._deliver(watched, status)
                continue
            if watched.missing_since is None:
                watched.missing_since = now
            # A job never seen may not be listed yet; count from submission instead.
            since = watched.missing_since if watched.seen else watched.added
            if watched.cancel_requested:
                changed |= self._deliver(watched, ClusterStatus(
                    ClusterState.CANCELLED, "GONE", "cancelled by simfarm; the cluster no "
                    "longer lists the job", None, "cancel"))
            elif now - since >= self.settings.vanish_grace_s:
                changed |= self._deliver(watched, ClusterStatus(
                    ClusterState.FAILED, "VANISHED", "the job left the cluster queue and "
                    "neither accounting nor its exit-code file records how it ended",
                    None, "none"))
        return changed

    def _deliver(self, watched: _Watched, status: ClusterStatus) -> bool:
        if status.final:
            status = self.backend.finalize(watched.native_id, watched.job_dir, status)
            # After a cancel, a job that died without an exit code or from a signal
            # was ended by that cancel (PBS reports qdel as Exit_status 256+signal).
            if watched.cancel_requested and status.state is ClusterState.FAILED and (
                    status.tentative or status.exit_code is None or status.exit_code >= 128):
                status = ClusterStatus(ClusterState.CANCELLED, status.native_state,
                                       "cancelled by simfarm", status.exit_code, status.source)
        if watched.last == status:
            return False
        if watched.last is not None and watched.last.final:
            return False
        watched.last = status
        if status.final:
            self.unwatch(watched.native_id)
        try:
            watched.on_update(status)
        except Exception:
            log.exception("cluster job %s: status callback failed", watched.native_id)
        return True

    def _problem(self, jobs: object, message: str) -> None:
        for watched in list(jobs):  # type: ignore[call-overload]
            if watched.on_problem is None:
                continue
            try:
                watched.on_problem(message)
            except Exception:
                log.exception("cluster job %s: problem callback failed", watched.native_id)

    # ----------------------------------------------------------------- thread
    def _run(self) -> None:
        self._stop.wait(self.settings.first_poll_delay_s)
        while not self._stop.is_set():
            with self._lock:
                idle = not self._jobs
            if idle:
                self._wake.wait()
                self._wake.clear()
                self._stop.wait(self.settings.first_poll_delay_s)
                continue
            try:
                changed = self.poll_once()
            except Exception:
                log.exception("%s poller cycle crashed; continuing", self.backend.kind)
                changed = False
            with self._lock:
                if self._errors:
                    self._interval = min(self.settings.max_error_backoff_s,
                                         self.settings.min_interval_s * 2 ** self._errors)
                elif changed:
                    self._interval = self.settings.min_interval_s
                else:
                    self._interval = min(self.settings.max_interval_s,
                                         self._interval * self.settings.growth)
                interval = self._interval
            self._wake.clear()
            self._wake.wait(interval)

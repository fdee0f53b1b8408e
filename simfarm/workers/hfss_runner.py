"""Runs ``kind="hfss"`` jobs on this machine: ``ansysedt`` batch solve with live progress.

On top of :class:`LocalRunner` (own process group, cancel, timeout, lease) it checks
the project exists *here*, picks the AEDT to use, follows the batch log AEDT appends
to ``<project>.log`` besides the ``-monitor`` output, turns both into job events (one
copy of each line: ``-monitor`` echoes the log), keeps a structured ``progress`` on the
job, lists the artifacts, and decides success from the exit status and AEDT's error
markers.
"""

from __future__ import annotations

import functools
import logging
import threading

from simfarm.common.aedt import AEDTInstall, AEDTNotFoundError, build_ansysedt_argv, find_aedt
from simfarm.common.hfss import HFSSSimulationConfig, SchedulerType
from simfarm.common.job_paths import node_roots
from simfarm.common.models import Job
from simfarm.common.paths import PathRejected, resolve_within
from simfarm.common.states import JobState
from simfarm.workers.aedt_log import (
    EchoFilter,
    LogTail,
    ProgressTracker,
    batch_log_path,
    failure_reason,
    read_max_passes,
    read_target_delta_s,
    results_folder,
)
from simfarm.workers.attempt import AttemptSupervisor
from simfarm.workers.local_runner import LocalRunner
from simfarm.workers.outcome import Outcome

log = logging.getLogger(__name__)

LOG_POLL_S = 0.25
BATCH_LOG_STREAM = "aedt_log"


class HFSSRunner(LocalRunner):
    """Runs one HFSS job (``job.spec.hfss``) with ``ansysedt`` on this node."""

    outcome_is_exit_status = False  # AEDT's log says whether the solve failed

    def __init__(self, supervisor: AttemptSupervisor, job: Job) -> None:
        super().__init__(supervisor, job)
        if job.spec.hfss is None:
            raise ValueError(f"job {job.id} is an hfss job without an hfss config")
        self.config: HFSSSimulationConfig = job.spec.hfss
        self.install: AEDTInstall | None = None
        self.log_progress = ProgressTracker()
        self.stream_progress = ProgressTracker()
        self._batch_log_seen = False
        self.echoes = EchoFilter()
        self._stop_tail = threading.Event()
        self._tail: LogTail | None = None
        self._follower: threading.Thread | None = None

    def argv(self) -> list[str]:
        assert self.install is not None
        return build_ansysedt_argv(self.config, self.install.executable)

    def _prepare(self) -> str | None:
        """Check what must exist on this node; return why the job cannot run, or None."""
        try:
            project = resolve_within(self.config.project_path, node_roots(self.ctx.settings),
                                     field="project_path")
        except PathRejected as exc:
            return f"project path refused on node {self.ctx.node_name}: {exc}"
        if not project.exists():
            return (f"project {project} does not exist on node {self.ctx.node_name} "
                    "(the path must be valid on the machine that runs the job)")
        version = next((key[5:] for key in self.job.spec.resources.labels
                        if key.startswith("aedt.") and key != "aedt.any"), None)
        try:
            self.install = find_aedt(self.config.ansys_edt_path or None, version=version)
        except (AEDTNotFoundError, ValueError) as exc:
            return f"{exc} (node {self.ctx.node_name})"
        self.log_progress.max_passes = read_max_passes(project, self.config.setup_name)
        self.stream_progress.max_passes = self.log_progress.max_passes
        target = read_target_delta_s(project, self.config.setup_name)
        self.log_progress.target_delta_s = self.stream_progress.target_delta_s = target
        return None

    def run(self) -> Outcome:
        problem = self._prepare()
        if problem is not None:
            log.warning("job %s: %s", self.job.id, problem)
            return Outcome(JobState.FAILED, reason=problem)
        assert self.install is not None
        log.info("job %s: solving %s with AEDT %s (%s)", self.job.id, self.config.project_path,
                 self.install.release, self.install.executable)
        self._tail = LogTail(batch_log_path(self.config.project_path))
        self._follower = threading.Thread(target=self._follow, args=(self._tail,), daemon=True,
                                          name=f"aedt-log-{self.job.id}")
        self._follower.start()
        try:
            outcome = super().run()
        finally:
            self._drain_log()
        tracker = self.log_progress if self._batch_log_seen else self.stream_progress
        outcome.fields["artifacts"] = self._artifacts()
        outcome.fields["progress"] = tracker.as_dict()
        outcome.fields["convergence"] = tracker.series()
        return outcome

    def exit_outcome(self, code: int) -> Outcome:
        """ansysedt ended by itself: failed on a non-zero status or an AEDT error marker."""
        self._drain_log()
        tracker = self.log_progress if self._batch_log_seen else self.stream_progress
        reason = failure_reason(code, tracker.errors)
        if reason is None:
            return Outcome(JobState.COMPLETED, exit_code=code)
        log.info("job %s: failed: %s", self.job.id, reason)
        return Outcome(JobState.FAILED, exit_code=code, reason=reason)

    def _drain_log(self) -> None:
        """Stop following the batch log and turn its last lines into events (idempotent)."""
        if self._tail is None:
            return
        self._stop_tail.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
        self._flush(timeout=0)  # lines the follower queued after the last flush
        for line in self._tail.read_lines(final=True):
            self._unsent.extend(self.on_line(BATCH_LOG_STREAM, line))
        self._flush(timeout=0)  # sent with the rest (kept while Redis is away)
        self._tail = None

    def _follow(self, tail: LogTail) -> None:
        """Feed new batch-log lines into the runner's line queue until told to stop."""
        while not self._stop_tail.wait(LOG_POLL_S):
            try:
                for line in tail.read_lines():
                    self.lines.put((BATCH_LOG_STREAM, line))
            except OSError as exc:
                log.warning("job %s: cannot read batch log: %s", self.job.id, exc)

    def on_line(self, stream: str, line: str) -> list[tuple[str, dict[str, object]]]:
        # -monitor echoes the batch log on stdout: one copy of each line is kept.
        events = super().on_line(stream, line) if self.echoes.first(stream, line) else []
        if stream == BATCH_LOG_STREAM:
            self._batch_log_seen = True
            tracker = self.log_progress
        else:
            tracker = self.stream_progress
        # The batch log is the reference; -monitor output counts only without one.
        if tracker.feed(line) and (tracker is self.log_progress or not self._batch_log_seen):
            progress = tracker.as_dict()
            events.append(("progress", progress))
            # The whole history goes beside the latest record: the job's event stream is
            # capped, so early passes of a long, chatty solve could be trimmed from it.
            self.supervisor.send(functools.partial(
                self.ctx.jobs.update_fields, self.job.id,
                {"progress": progress, "convergence": tracker.series()}))
        return events

    def _artifacts(self) -> list[str]:
        found = []
        for path in (results_folder(self.config.project_path),
                     batch_log_path(self.config.project_path)):
            if path.exists():
                found.append(str(path))
        return found


def run_hfss(supervisor: AttemptSupervisor, job: Job) -> Outcome:
    """The ``hfss`` runner of a worker that runs jobs itself (a scheduler worker forwards
    them to its cluster instead)."""
    config = job.spec.hfss
    if config is not None and config.scheduler_type is not SchedulerType.NONE:
        return Outcome(JobState.FAILED, reason=(
            f"HFSS job for {config.scheduler_type.value} reached node "
            f"{supervisor.node_name}, which is not attached to that scheduler"))
    return HFSSRunner(supervisor, job).run()

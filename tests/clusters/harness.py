"""A cluster under test: a backend, a fast poller and helpers to follow one job."""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from simfarm.workers.schedulers import (
    BackendConfig,
    ClusterBackend,
    ClusterJobRequest,
    ClusterOptions,
    ClusterPoller,
    ClusterStatus,
    PollerSettings,
    SubmittedJob,
    create_backend,
)
from simfarm.workers.schedulers.commands import RetryPolicy
from tests.helpers import FAKES

FAST_POLL = PollerSettings(min_interval_s=0.3, max_interval_s=1.5, growth=1.5,
                           first_poll_delay_s=0.1, max_error_backoff_s=2.0, vanish_grace_s=10.0)
FAST_RETRY = RetryPolicy(attempts=3, first_delay_s=0.2, max_delay_s=1.0)


class Recorder:
    """Collects a job's status updates and problem reports."""

    def __init__(self) -> None:
        self.statuses: list[ClusterStatus] = []
        self.problems: list[str] = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def update(self, status: ClusterStatus) -> None:
        with self._lock:
            self.statuses.append(status)
        if status.final:
            self.done.set()

    def problem(self, message: str) -> None:
        with self._lock:
            self.problems.append(message)

    @property
    def last(self) -> ClusterStatus | None:
        with self._lock:
            return self.statuses[-1] if self.statuses else None

    def states(self) -> list[str]:
        with self._lock:
            return [s.state.value for s in self.statuses]

    def wait(self, timeout_s: float) -> ClusterStatus:
        if not self.done.wait(timeout_s):
            raise AssertionError(f"job did not end within {timeout_s}s; saw {self.statuses}")
        assert self.last is not None
        return self.last


@dataclass
class Cluster:
    """One backend wired for tests."""

    kind: str
    backend: ClusterBackend
    status_command: str
    queues: set[str]
    default_queue: str | None
    reports_timeout: bool
    reports_allocation: bool
    limit_minute_s: float
    work: Path
    end_timeout_s: float = 60.0
    pollers: list[ClusterPoller] = field(default_factory=list)
    _count: int = 0

    def request(self, argv: list[str], *, env: dict[str, str] | None = None,
                cwd: str | None = None) -> ClusterJobRequest:
        self._count += 1
        job_id = f"{self.kind}-{os.getpid()}-{self._count}"
        return ClusterJobRequest(job_id=job_id, argv=argv, job_dir=self.work / job_id,
                                 env=env or {}, cwd=cwd)

    def poller(self, start: bool = True) -> ClusterPoller:
        poller = ClusterPoller(self.backend, FAST_POLL)
        self.pollers.append(poller)
        if start:
            poller.start()
        return poller

    def submit(self, request: ClusterJobRequest,
               options: ClusterOptions | None = None) -> SubmittedJob:
        return self.backend.submit(request, options or ClusterOptions())

    def follow(self, poller: ClusterPoller, job: SubmittedJob) -> Recorder:
        recorder = Recorder()
        poller.watch(job.native_id, job.job_dir, recorder.update, recorder.problem)
        return recorder

    def run(self, argv: list[str], options: ClusterOptions | None = None,
            env: dict[str, str] | None = None) -> tuple[SubmittedJob, Recorder]:
        """Submit, follow until the end, return the job and what was seen."""
        job = self.submit(self.request(argv, env=env), options)
        recorder = self.follow(self.poller(), job)
        recorder.wait(self.end_timeout_s)
        return job, recorder

    def close(self) -> None:
        for poller in self.pollers:
            poller.stop()


COMMANDS = {"slurm": ["sbatch", "squeue", "scancel", "sinfo", "sacct"],
            # SLURM's Torque wrappers call sbatch/scancel from their own directory.
            "pbs": ["qsub", "qstat", "qdel", "pbsnodes", "sbatch", "scancel", "squeue",
                    "scontrol", "sinfo"],
            "lsf": ["bsub", "bjobs", "bkill", "bqueues", "bhosts"],
            "winhpc": ["job", "node"]}
STATUS_COMMAND = {"slurm": "squeue", "pbs": "qstat", "lsf": "bjobs", "winhpc": "job"}


def make_shim(directory: Path, real_dir: Path, commands: list[str], flaky: str) -> Path:
    """A bin directory where ``flaky`` goes through tests/fakes/flaky.py and the other
    ``commands`` link straight to ``real_dir``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".real").write_text(str(real_dir))
    for name in commands:
        (directory / name).symlink_to(FAKES / "flaky.py" if name == flaky else real_dir / name)
    return directory


def inject(shim: Path, command: str, failures: int, *, message: str = "", rc: int = 1,
           garbage: str | None = None) -> None:
    """Make the next ``failures`` calls of ``command`` in ``shim`` fail."""
    (shim / f"{command}.message").write_text(message or f"{command}: error")
    (shim / f"{command}.rc").write_text(str(rc))
    if garbage is not None:
        (shim / f"{command}.garbage").write_text(garbage)
    (shim / f"{command}.failures").write_text(str(failures))


def build(kind: str, work: Path, *, shim_failures: bool = False) -> Cluster:
    """A :class:`Cluster` of ``kind`` whose files live under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    config = BackendConfig(command_timeout_s=30.0, submit_retry=FAST_RETRY,
                           cancel_retry=FAST_RETRY)
    if kind in ("lsf", "winhpc"):
        config.bin_dir = FAKES / kind
        config.env = {"SIMFARM_FAKE_CLUSTER_DIR": str(work / "fake-cluster"),
                      "SIMFARM_FAKE_PEND_S": "0.5", "SIMFARM_FAKE_MINUTE_S": "2",
                      "SIMFARM_FAKE_CLEAN_S": "3"}
    if kind == "winhpc":
        config.extra["node_os"] = "linux"
    if kind == "pbs":
        config.extra["flavour"] = "auto"
    status_command = STATUS_COMMAND[kind]
    if shim_failures:
        real = config.bin_dir or Path(shutil.which(status_command) or "/usr/bin").parent
        config.bin_dir = make_shim(work / "shim", real, COMMANDS[kind], status_command)
    backend = create_backend(kind, config)
    if kind == "slurm":
        return Cluster(kind, backend, status_command, {"debug", "long"}, "debug", True, True,
                       60.0, work, end_timeout_s=60)
    if kind == "pbs":
        # SLURM's Torque wrappers: no exit status in qstat, no allocation in pbsnodes.
        return Cluster(kind, backend, status_command, {"debug", "long"}, None, False, False,
                       60.0, work, end_timeout_s=60)
    if kind == "lsf":
        return Cluster(kind, backend, status_command, {"normal", "short"}, None, True, True,
                       2.0, work)
    return Cluster(kind, backend, status_command, {"ComputeNodes", "ansys"}, "ComputeNodes",
                   True, True, 2.0, work)


@dataclass
class LimitJob:
    """A job submitted with a one-minute limit at the start of the session."""

    cluster: Cluster
    job: SubmittedJob
    seen: Recorder
    submitted_at: float



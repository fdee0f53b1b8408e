"""Value types shared by every cluster backend: cluster-side states, statuses, partitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class ClusterState(StrEnum):
    """A cluster job's state, reduced to what simfarm acts on.

    The backend keeps the scheduler's own word in :attr:`ClusterStatus.native_state`;
    this enum only says what it means. ``QUEUED`` maps to simfarm's ``scheduled``.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True for states a cluster job never leaves."""
        return self in (ClusterState.COMPLETED, ClusterState.FAILED, ClusterState.CANCELLED)


@dataclass(frozen=True)
class ClusterStatus:
    """What the cluster says about one job.

    ``native_state`` is the scheduler's state word (``PENDING``, ``PEND``, ``Q``...);
    ``reason`` its explanation (``Resources``, ``TIMEOUT``, ``TERM_RUNLIMIT``...);
    ``source`` names where the answer came from (``squeue``, ``sacct``, ``ec-file``...).
    ``tentative`` marks a final state read from a queue that only says "ended"
    (Torque's ``C``): the job's exit-code file, or a cancel simfarm sent, decides.
    """

    state: ClusterState
    native_state: str
    reason: str | None = None
    exit_code: int | None = None
    source: str = "queue"
    tentative: bool = False

    @property
    def final(self) -> bool:
        """True when the job has ended on the cluster."""
        return self.state.final


@dataclass(frozen=True)
class Partition:
    """One partition / queue / node group and its capacity."""

    name: str
    state: str
    nodes_total: int = 0
    nodes_used: int = 0
    cores_total: int = 0
    cores_used: int = 0
    memory_mb: int = 0
    default: bool = False

    @property
    def cores_free(self) -> int:
        """Cores not allocated to any job."""
        return max(0, self.cores_total - self.cores_used)


@dataclass(frozen=True)
class ClusterJobRequest:
    """Everything a backend needs to write and submit one job script.

    ``argv`` is the program and its arguments (never a shell string); ``job_dir`` is a
    directory visible from the compute nodes, where the script, its output and the
    ``<native_id>.ec`` exit-code file are written; ``licenses`` are the licences the
    cluster is asked to count for the job, by the cluster's names (``sbatch
    --licenses``, LSF ``rusage``, PBS ``-l``, HPC Pack ``/license``).
    """

    job_id: str
    argv: list[str]
    job_dir: Path
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    attempt: int = 0
    licenses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmittedJob:
    """A job accepted by the cluster."""

    native_id: str
    script_path: Path
    job_dir: Path

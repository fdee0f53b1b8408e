"""Backend lookup by scheduler name."""

from __future__ import annotations

from simfarm.workers.schedulers.base import BackendConfig, ClusterBackend
from simfarm.workers.schedulers.lsf import LsfBackend
from simfarm.workers.schedulers.pbs import PbsBackend
from simfarm.workers.schedulers.slurm import SlurmBackend
from simfarm.workers.schedulers.winhpc import WinHpcBackend

BACKENDS: dict[str, type[ClusterBackend]] = {
    SlurmBackend.kind: SlurmBackend,
    LsfBackend.kind: LsfBackend,
    PbsBackend.kind: PbsBackend,
    WinHpcBackend.kind: WinHpcBackend,
}


# PyEDB's SchedulerType values name the schedulers in labels and job configs.
ALIASES = {"windows_hpc": "winhpc", "hpc": "winhpc", "torque": "pbs", "openpbs": "pbs"}
LABEL_VALUES = {"slurm": "slurm", "lsf": "lsf", "pbs": "pbs", "winhpc": "windows_hpc"}


def backend_kind(name: str) -> str:
    """``slurm``/``lsf``/``pbs``/``winhpc`` for any accepted spelling; ValueError otherwise."""
    kind = ALIASES.get(name.strip().lower(), name.strip().lower())
    if kind not in BACKENDS:
        known = ", ".join(sorted({*BACKENDS, *ALIASES}))
        raise ValueError(f"unknown scheduler {name!r}; known: {known}")
    return kind


def scheduler_label(name: str) -> str:
    """The ``scheduler=<value>`` node label for a scheduler (PyEDB's SchedulerType value)."""
    return LABEL_VALUES[backend_kind(name)]


def create_backend(kind: str, config: BackendConfig | None = None) -> ClusterBackend:
    """A backend for scheduler ``kind`` (``slurm``, ``lsf``, ``pbs``, ``winhpc`` or
    ``windows_hpc``)."""
    return BACKENDS[backend_kind(kind)](config)

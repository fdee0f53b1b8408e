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


def create_backend(kind: str, config: BackendConfig | None = None) -> ClusterBackend:
    """A backend for scheduler ``kind`` (``slurm``, ``lsf``, ``pbs``, ``winhpc``)."""
    try:
        cls = BACKENDS[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown scheduler {kind!r}; known: {', '.join(sorted(BACKENDS))}") \
            from None
    return cls(config)

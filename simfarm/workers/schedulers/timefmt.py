"""Formatting a time limit (seconds) the way each scheduler wants it."""

from __future__ import annotations

import math


def hms(seconds: int) -> str:
    """``HH:MM:SS`` with hours unbounded (PBS ``walltime``)."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def slurm_time(seconds: int) -> str:
    """``D-HH:MM:SS`` (sbatch ``--time``; SLURM rounds up to whole minutes)."""
    days, rest = divmod(int(seconds), 86400)
    return f"{days}-{hms(rest)}" if days else hms(rest)


def ceil_minutes(seconds: int) -> int:
    """Whole minutes, rounded up (LSF ``-W``, HPC Pack ``/runtime``), at least 1."""
    return max(1, math.ceil(seconds / 60))


def lsf_time(seconds: int) -> str:
    """``[hour:]minute`` (bsub ``-W``)."""
    hours, minutes = divmod(ceil_minutes(seconds), 60)
    return f"{hours}:{minutes:02d}" if hours else str(minutes)


def hpc_runtime(seconds: int) -> str:
    """``[[days:]hours:]minutes`` (HPC Pack ``job new /runtime``)."""
    days, rest = divmod(ceil_minutes(seconds), 1440)
    hours, minutes = divmod(rest, 60)
    return f"{days}:{hours}:{minutes}"

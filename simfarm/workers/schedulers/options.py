"""Scheduler options as the backends consume them, parsed and checked once.

The fields mirror PyEDB's ``SchedulerOptions`` (queue, time, nodes, tasks_per_node,
cores_per_node, memory, account, reservation, qos, constraints, exclusive, gpus,
gpu_type, priority, email_notification, run_as_administrator) so one object can be
built from the HFSS configuration, from a dict, or by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from simfarm.workers.schedulers.errors import InvalidOptions

PRIORITIES = ("Low", "BelowNormal", "Normal", "AboveNormal", "High")
# Directive values end up on `#SBATCH`/`#BSUB`/`#PBS` lines or HPC Pack switches: a
# newline would start a new shell line and quotes change how the scheduler splits
# the line, so only characters real queue/account/feature names use are allowed.
_DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9_.,:+=@/%&|!\[\]()*\-]{1,256}$")
_EMAIL = re.compile(r"^[A-Za-z0-9_.+\-]+@[A-Za-z0-9.\-]+$")
_TIME_HMS = re.compile(r"^(?:(\d+)[.\-])?(\d+):(\d{1,2}):(\d{1,2})$")
_TIME_MINUTES = re.compile(r"^\d+$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_MEMORY_FACTORS = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}
# PyEDB's SchedulerOptions uses "default" to mean "the cluster's default queue".
_DEFAULT_QUEUE_NAMES = {"", "default"}


def parse_time_limit(value: str | int | float | None) -> int | None:
    """Seconds from ``HH:MM:SS``, ``D.HH:MM:SS``, ``D-HH:MM:SS`` or plain minutes."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        if value <= 0:
            raise InvalidOptions(f"time limit must be positive, got {value!r}")
        return math.ceil(value)
    text = value.strip()
    if _TIME_MINUTES.match(text):
        minutes = int(text)
        if minutes <= 0:
            raise InvalidOptions(f"time limit must be positive, got {value!r}")
        return minutes * 60
    match = _TIME_HMS.match(text)
    if not match:
        raise InvalidOptions(
            f"time {value!r} is not HH:MM:SS, D.HH:MM:SS, D-HH:MM:SS or minutes")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if minutes > 59 or seconds > 59:
        raise InvalidOptions(f"time {value!r}: minutes and seconds must be below 60")
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise InvalidOptions(f"time limit must be positive, got {value!r}")
    return total


def parse_memory_mb(value: str | int | None) -> int | None:
    """MiB from ``"4GB"``, ``"512MB"``, ``"4G"`` or a bare number of MiB."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        if value <= 0:
            raise InvalidOptions(f"memory must be positive, got {value!r}")
        return value
    match = _MEMORY.match(value)
    if not match:
        raise InvalidOptions(f"memory {value!r} is not a size such as 4GB or 512MB")
    amount = float(match.group(1)) * _MEMORY_FACTORS[match.group(2).upper()]
    if amount <= 0:
        raise InvalidOptions(f"memory must be positive, got {value!r}")
    return max(1, math.ceil(amount))


def check_directive_value(field_name: str, value: str | None) -> str | None:
    """Return ``value`` if it is safe on a scheduler directive line, else raise."""
    if value is None or value == "":
        return None
    if not _DIRECTIVE_VALUE.match(value):
        raise InvalidOptions(
            f"{field_name} {value!r} contains characters not allowed in a scheduler "
            "directive (whitespace, quotes, '#', '$', ';', backslash or control characters)")
    return value


@dataclass(frozen=True)
class ClusterOptions:
    """Validated scheduler options; ``None`` means "leave it to the cluster"."""

    queue: str | None = None
    time_limit_s: int | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    cores_per_node: int = 0
    memory_mb: int | None = None
    account: str | None = None
    reservation: str | None = None
    qos: str | None = None
    constraints: str | None = None
    exclusive: bool = False
    gpus: int = 0
    gpu_type: str | None = None
    priority: str = "Normal"
    email: str | None = None
    run_as_administrator: bool = False

    def __post_init__(self) -> None:
        for name in ("queue", "account", "reservation", "qos", "constraints", "gpu_type"):
            check_directive_value(name, getattr(self, name))
        if self.nodes < 1 or self.nodes > 100_000:
            raise InvalidOptions(f"nodes must be between 1 and 100000, got {self.nodes}")
        if self.tasks_per_node < 1 or self.tasks_per_node > 100_000:
            raise InvalidOptions(f"tasks_per_node must be at least 1, got {self.tasks_per_node}")
        if self.cores_per_node < 0:
            raise InvalidOptions(f"cores_per_node must not be negative, got {self.cores_per_node}")
        if self.gpus < 0:
            raise InvalidOptions(f"gpus must not be negative, got {self.gpus}")
        if self.priority not in PRIORITIES:
            raise InvalidOptions(f"priority must be one of {', '.join(PRIORITIES)}")
        if self.email is not None and not _EMAIL.match(self.email):
            raise InvalidOptions(f"email_notification {self.email!r} is not an e-mail address")

    @property
    def total_tasks(self) -> int:
        """Processes over all nodes."""
        return self.nodes * self.tasks_per_node

    @property
    def cpus_per_task(self) -> int:
        """Cores each task gets when ``cores_per_node`` is set, else 1."""
        if self.cores_per_node <= 0:
            return 1
        return max(1, self.cores_per_node // self.tasks_per_node)

    @property
    def total_cores(self) -> int:
        """Cores over all nodes (what the job occupies on the cluster)."""
        per_node = self.cores_per_node if self.cores_per_node > 0 else self.tasks_per_node
        return self.nodes * per_node

    @classmethod
    def from_any(cls, source: Any = None, *, time_limit_s: float | None = None) -> ClusterOptions:
        """Build from a PyEDB/simfarm ``SchedulerOptions``, a mapping or ``None``.

        ``time_limit_s`` (the job's own timeout) applies when the options set no time.
        """
        if source is None:
            data: Mapping[str, Any] = {}
        elif isinstance(source, ClusterOptions):
            return source
        elif isinstance(source, Mapping):
            data = source
        elif hasattr(source, "model_dump"):
            data = source.model_dump()
        else:
            data = {f: getattr(source, f) for f in _SOURCE_FIELDS if hasattr(source, f)}
        unknown = set(data) - set(_SOURCE_FIELDS) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidOptions(f"unknown scheduler option(s): {', '.join(sorted(unknown))}")
        queue = data.get("queue")
        limit = parse_time_limit(data.get("time")) if "time" in data else data.get("time_limit_s")
        if limit is None and time_limit_s is not None:
            limit = math.ceil(time_limit_s)
        memory = data.get("memory") if "memory" in data else data.get("memory_mb")
        return cls(
            queue=None if queue is None or queue in _DEFAULT_QUEUE_NAMES else str(queue),
            time_limit_s=limit,
            nodes=int(data.get("nodes", 1)),
            tasks_per_node=int(data.get("tasks_per_node", 1)),
            cores_per_node=int(data.get("cores_per_node", 0)),
            memory_mb=parse_memory_mb(memory),
            account=data.get("account") or None,
            reservation=data.get("reservation") or None,
            qos=data.get("qos") or None,
            constraints=data.get("constraints") or None,
            exclusive=bool(data.get("exclusive", False)),
            gpus=int(data.get("gpus", 0)),
            gpu_type=data.get("gpu_type") or None,
            priority=str(data.get("priority", "Normal")),
            email=data.get("email_notification") or data.get("email") or None,
            run_as_administrator=bool(data.get("run_as_administrator", False)),
        )


_SOURCE_FIELDS = (
    "queue", "time", "nodes", "tasks_per_node", "cores_per_node", "memory", "account",
    "reservation", "qos", "constraints", "exclusive", "gpus", "gpu_type", "priority",
    "email_notification", "run_as_administrator",
)

"""HFSS job configuration models, mirroring PyEDB's job manager.

Field names, types, defaults and validation follow
``pyedb.workflows.job_manager.backend.job_submission`` as last shipped (pyedb
0.64-0.65, removed in ansys/pyedb commit 7f642bf2e), so configurations written
for PyEDB load unchanged.  Deliberate differences, each fixing a PyEDB defect:

* every model validates on construction and on assignment (PyEDB only checked
  ``SchedulerOptions`` when a full config was validated);
* the project file is *not* required to exist where the config is built: it must
  exist on the node that runs the job, which checks it there;
* an empty ``ansys_edt_path`` means "newest AEDT found on the running node"
  instead of "newest AEDT on the submitting machine, or ValueError";
* ``from_dict`` keeps ``user`` and gives a dict without ``jobid`` a unique
  ``JOB_...`` id (PyEDB failed on a missing ``user`` and used a per-second
  ``RSM_<timestamp>`` id that collides for batch submissions);
* host names and wall times that would corrupt the ``-machinelist`` argument or
  the scheduler directive are rejected.
"""

from __future__ import annotations

import platform
import re
import tempfile
import uuid
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import PurePath
from typing import Any, Self, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "HFSS3DLayoutBatchOptions",
    "HFSSSimulationConfig",
    "MachineNode",
    "SchedulerOptions",
    "SchedulerType",
    "aedt_release",
    "create_hfss_config",
    "new_hfss_jobid",
    "normalize_aedt_version",
]

JOBID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
_TIME_HMS = re.compile(r"^(\d+):(\d{2}):(\d{2})$")
_TIME_DHMS = re.compile(r"^(\d+)\.(\d{2}):(\d{2}):(\d{2})$")
_TIME_MINUTES = re.compile(r"^(\d+)$")
_DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9_.,:+=@/%&|!\[\]()*\-]{1,256}$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B?)\s*$", re.IGNORECASE)
_MEMORY_FACTOR_MB = {"": 1.0, "K": 1.0 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}

SCHEDULER_PRIORITIES = ("Low", "BelowNormal", "Normal", "AboveNormal", "High")
PROCESS_PRIORITIES = ("Normal", "Low", "High", "Idle")
MPI_VENDORS = ("Microsoft", "Intel", "Open MPI")
PROJECT_SUFFIXES = (".aedt", ".aedb")


class SchedulerType(StrEnum):
    """Where an HFSS job runs: directly on a node (``NONE``) or through a cluster scheduler."""

    NONE = "none"
    LSF = "lsf"
    SLURM = "slurm"
    PBS = "pbs"
    WINDOWS_HPC = "windows_hpc"


def new_hfss_jobid() -> str:
    """Return a fresh PyEDB-style job id ``JOB_<YYYYmmdd_HHMMSS>_<8 hex>``."""
    return f"JOB_{datetime.now().strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:8]}"


def parse_walltime(value: str) -> int:
    """Return seconds for a wall time in ``H+:MM:SS``, ``D.HH:MM:SS`` or minutes.

    Raises ``ValueError`` for any other form or for minutes/seconds above 59.
    """
    if m := _TIME_HMS.match(value):
        hours, minutes, seconds = (int(g) for g in m.groups())
        days = 0
    elif m := _TIME_DHMS.match(value):
        days, hours, minutes, seconds = (int(g) for g in m.groups())
        if hours > 23:
            raise ValueError("hours must be 00-23 in D.HH:MM:SS")
    elif m := _TIME_MINUTES.match(value):
        return int(m.group(1)) * 60
    else:
        raise ValueError("Time must be in HH:MM:SS, days.HH:MM:SS, or minutes format")
    if minutes > 59 or seconds > 59:
        raise ValueError("minutes and seconds must be 00-59")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_memory_mb(value: str) -> int:
    """Return megabytes (MiB) for a memory size such as ``4GB``, ``512M``, ``64gb`` or ``2048``.

    A bare number is taken as megabytes, as SLURM's ``--mem`` does.
    """
    m = _MEMORY.match(value)
    if not m:
        raise ValueError("Memory must be a number with an optional unit K, M, G or T (e.g. '4GB')")
    number, unit, _suffix = m.groups()
    return max(1, round(float(number) * _MEMORY_FACTOR_MB[unit.upper()]))


def normalize_aedt_version(text: str) -> str:
    """Turn ``252``, ``v252``, ``25.2``, ``2025.2``, ``2025R2`` or ``2025 R2`` into ``"252"``."""
    value = text.strip().lower().replace(" ", "")
    if m := re.fullmatch(r"v?(\d{3})", value):
        return m.group(1)
    if m := re.fullmatch(r"(?:20)?(\d{2})(?:\.|r)(\d)", value):
        return m.group(1) + m.group(2)
    raise ValueError(f"not an AEDT version: {text!r} (use e.g. 252, 2025.2 or 2025R2)")


def aedt_release(version: str) -> str:
    """``"252"`` → ``"2025.2"`` (any accepted spelling in, release form out)."""
    short = normalize_aedt_version(version)
    return f"20{short[:2]}.{short[2:]}"


class _Model(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    def validate_fields(self) -> None:
        """Re-check every field (kept for PyEDB compatibility; construction already validates)."""
        self.model_validate(self.model_dump())

    @classmethod
    def dump_of_stored(cls, stored: dict[str, Any]) -> dict[str, Any]:
        """``model_dump(mode="json")`` of the model whose ``model_dump_json(
        exclude_defaults=True)`` is ``stored`` (parsed), without building the model: the
        defaults put back. For pages that list many stored jobs; ``stored`` was
        validated when it was stored."""
        defaults = _defaults_dump(cls)
        out = {**defaults, **stored}  # the nested fields are replaced below: never shared
        for name, (sub, many) in _nested_fields(cls).items():
            value = stored.get(name, defaults[name])
            if value is None:
                out[name] = None
            elif many:
                out[name] = [sub.dump_of_stored(v) for v in value]
            else:
                out[name] = sub.dump_of_stored(value)
        return out


@cache
def _nested_fields(cls: type[_Model]) -> dict[str, tuple[type[_Model], bool]]:
    """The fields of ``cls`` that hold models: name → (model class, a list of them)."""
    out: dict[str, tuple[type[_Model], bool]] = {}
    for name, info in cls.model_fields.items():
        kind = info.annotation
        many = get_origin(kind) is list
        if many:
            kind = get_args(kind)[0]
        if isinstance(kind, type) and issubclass(kind, _Model):
            out[name] = (kind, many)
    return out


@cache
def _defaults_dump(cls: type[_Model]) -> dict[str, Any]:
    return cls.model_construct().model_dump(mode="json")


def _one_of(value: str, choices: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``choices``, else PyEDB's ValueError."""
    if value not in choices:
        raise ValueError(f"{what} must be one of: {list(choices)}")
    return value


class SchedulerOptions(_Model):
    """Resource requirements and scheduler directives (PyEDB ``SchedulerOptions``).

    ``time`` accepts ``H+:MM:SS``, ``D.HH:MM:SS`` (Windows HPC) or whole minutes;
    ``memory`` is per node, e.g. ``"4GB"``; ``cores_per_node=0`` means "use
    ``tasks_per_node``"; ``priority`` is one of Low, BelowNormal, Normal,
    AboveNormal, High; ``run_as_administrator`` applies to Windows HPC only.
    """

    queue: str = "default"
    time: str = "24:00:00"
    nodes: int = Field(default=1, ge=1)
    tasks_per_node: int = Field(default=1, ge=1)
    cores_per_node: int = Field(default=0, ge=0)
    memory: str = "4GB"
    account: str | None = None
    reservation: str | None = None
    qos: str | None = None
    constraints: str | None = None
    exclusive: bool = False
    gpus: int = Field(default=0, ge=0)
    gpu_type: str | None = None
    priority: str = "Normal"
    email_notification: str | None = None
    run_as_administrator: bool = False

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: str) -> str:
        parse_walltime(value)
        return value

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str) -> str:
        parse_memory_mb(value)
        return value

    @field_validator("queue", "account", "reservation", "qos", "constraints", "gpu_type",
                     "email_notification")
    @classmethod
    def _check_directive(cls, value: str | None) -> str | None:
        # These go onto #SBATCH/#BSUB/#PBS lines or HPC Pack switches: a newline would
        # start a new script line, quotes change how the scheduler splits the line.
        if value and not _DIRECTIVE_VALUE.match(value):
            raise ValueError("must be 1-256 characters without whitespace, quotes, '#', "
                             "'$', ';', backslashes or control characters")
        return value

    @field_validator("priority")
    @classmethod
    def _check_priority(cls, value: str) -> str:
        return _one_of(value, SCHEDULER_PRIORITIES, "Priority")

    @property
    def walltime_seconds(self) -> int:
        """The wall-time limit in seconds."""
        return parse_walltime(self.time)

    @property
    def memory_mb(self) -> int:
        """Memory per node in megabytes."""
        return parse_memory_mb(self.memory)


class MachineNode(_Model):
    """One host of a distributed HFSS run; ``str()`` gives ``host:cores:max_cores:util%``.

    ``cores=-1`` means all cores of the host.
    """

    hostname: str = "localhost"
    cores: int = -1
    max_cores: int = Field(default=20, ge=1)
    utilization: int = Field(default=90, ge=1, le=100)

    @field_validator("hostname")
    @classmethod
    def _check_hostname(cls, value: str) -> str:
        if not value:
            raise ValueError("Hostname cannot be empty")
        if re.search(r"[\s:,'\"]", value):
            raise ValueError("Hostname cannot contain spaces, quotes, ':' or ','")
        return value

    @field_validator("cores")
    @classmethod
    def _check_cores(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("cores must be -1 (all) or at least 1")
        return value

    def __str__(self) -> str:
        return f"{self.hostname}:{self.cores}:{self.max_cores}:{self.utilization}%"


class HFSS3DLayoutBatchOptions(_Model):
    """HFSS 3D Layout solver settings passed through ``-batchoptions``."""

    create_starting_mesh: bool = False
    default_process_priority: str = "Normal"
    enable_gpu: bool = False
    mpi_vendor: str = "Intel"
    mpi_version: str = "Default"
    remote_spawn_command: str = "Scheduler"
    solve_adaptive_only: bool = False
    validate_only: bool = False
    temp_directory: str = Field(default_factory=tempfile.gettempdir)

    @field_validator("default_process_priority")
    @classmethod
    def _check_priority(cls, value: str) -> str:
        return _one_of(value, PROCESS_PRIORITIES, "Priority")

    @field_validator("mpi_vendor")
    @classmethod
    def _check_mpi_vendor(cls, value: str) -> str:
        return _one_of(value, MPI_VENDORS, "MPI vendor")

    @field_validator("temp_directory")
    @classmethod
    def _check_temp_directory(cls, value: str) -> str:
        if not value:
            raise ValueError("Temp directory cannot be empty")
        return value

    def to_batch_options_dict(self) -> dict[str, str]:
        """Return the ``-batchoptions`` key/value pairs, in PyEDB's order."""
        flag = {True: "1", False: "0"}
        return {
            "HFSS 3D Layout Design/CreateStartingMesh": flag[self.create_starting_mesh],
            "HFSS 3D Layout Design/DefaultProcessPriority": self.default_process_priority,
            "HFSS 3D Layout Design/EnableGPU": flag[self.enable_gpu],
            "HFSS 3D Layout Design/MPIVendor": self.mpi_vendor,
            "HFSS 3D Layout Design/MPIVersion": self.mpi_version,
            "HFSS 3D Layout Design/RemoteSpawnCommand": self.remote_spawn_command,
            "HFSS 3D Layout Design/SolveAdaptiveOnly": flag[self.solve_adaptive_only],
            "HFSS 3D Layout Design/ValidateOnly": flag[self.validate_only],
            "HFSS 3D Layout Design/RAMLimitPercent": "90",
            "HFSS/RAMLimitPercent": "90",
            "Maxwell 2D/RAMLimitPercent": "90",
            "Maxwell 3D/RAMLimitPercent": "90",
            "Q3D Extractor/RAMLimitPercent": "90",
        }

    def to_batch_options_string(self) -> str:
        """Return ``'key1'='value1' 'key2'='value2' ...`` (one argv element)."""
        return " ".join(f"'{k}'='{v}'" for k, v in self.to_batch_options_dict().items())


# Keys PyEDB's to_dict adds for bookkeeping; from_dict ignores them.
_TO_DICT_METADATA = ("platform", "timestamp", "version")


class HFSSSimulationConfig(_Model):
    """A complete HFSS batch-solve job (PyEDB ``HFSSSimulationConfig``).

    ``jobid`` is generated as ``JOB_<timestamp>_<8 hex>`` when empty and may only
    contain letters, digits, ``_`` and ``-``.  ``project_path`` must end in
    ``.aedt`` or ``.aedb``; whether it exists is checked on the node that runs
    the job.  ``ansys_edt_path`` empty means "newest AEDT on that node".
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid", populate_by_name=True)

    ansys_edt_path: str = ""
    solver: str = "Hfss3DLayout"
    jobid: str = ""
    user: str = "unknown"
    distributed: bool = True
    machine_nodes: list[MachineNode] = Field(default_factory=lambda: [MachineNode()])
    auto: bool = True
    non_graphical: bool = True
    monitor: bool = True
    layout_options: HFSS3DLayoutBatchOptions = Field(default_factory=HFSS3DLayoutBatchOptions)
    project_path: str = Field(
        default_factory=lambda: str(PurePath(tempfile.gettempdir(), "simulation.aedt"))
    )
    design_name: str = ""
    design_mode: str = ""
    setup_name: str = ""
    scheduler_type: SchedulerType = SchedulerType.NONE
    scheduler_options: SchedulerOptions = Field(default_factory=SchedulerOptions)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in _TO_DICT_METADATA}
            if not data.get("jobid"):
                data["jobid"] = new_hfss_jobid()
            if data.get("ansys_edt_path") is None:
                data.pop("ansys_edt_path", None)
            if data.get("user") is None:
                data.pop("user", None)
        return data

    @field_validator("scheduler_type", mode="before")
    @classmethod
    def _scheduler_type_any_case(cls, value: Any) -> Any:
        # PyEDB's own docs pass scheduler_type="SLURM"; accept names in any case.
        if isinstance(value, str) and not isinstance(value, SchedulerType):
            return value.strip().lower()
        return value

    @field_validator("jobid")
    @classmethod
    def _check_jobid(cls, value: str) -> str:
        if not JOBID_PATTERN.match(value):
            raise ValueError("Job ID can only contain letters, numbers, underscores, and hyphens")
        return value

    @field_validator("project_path")
    @classmethod
    def _check_project_path(cls, value: str) -> str:
        if not value.lower().endswith(PROJECT_SUFFIXES):
            raise ValueError("Project path must be a .aedt or .aedb file")
        return value

    def generate_machinelist_string(self) -> str:
        """Return the local ``-machinelist`` value ``list=host:cores:max:util%,...`` or ``""``."""
        if not self.machine_nodes:
            return ""
        return "list=" + ",".join(str(node) for node in self.machine_nodes)

    def generate_batch_options_string(self) -> str:
        """Return the ``-batchoptions`` value built from ``layout_options``."""
        return self.layout_options.to_batch_options_string()

    def generate_design_string(self) -> str:
        """Return ``design_name:design_mode:setup_name`` for ``-batchsolve``."""
        return f"{self.design_name}:{self.design_mode}:{self.setup_name}"

    def num_cores_for_scheduler(self) -> int:
        """Total cores to request from a scheduler: nodes x (cores_per_node or tasks_per_node)."""
        opts = self.scheduler_options
        per_node = opts.cores_per_node if opts.cores_per_node > 0 else opts.tasks_per_node
        return opts.nodes * per_node

    _num_cores_for_scheduler = num_cores_for_scheduler  # PyEDB's private name

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict with PyEDB's keys (plus ``user``)."""
        return pyedb_dict(self.model_dump(mode="json"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build a config from :meth:`to_dict` output or a PyEDB REST ``config`` payload.

        Missing keys take PyEDB's ``from_dict`` fallbacks (note: design
        ``main``, mode ``Nominal``, setup ``Setup1``, which differ from the
        constructor's empty defaults); bookkeeping keys are ignored.
        """
        payload = dict(data)
        payload.setdefault("machine_nodes", [])
        payload.setdefault("design_name", "main")
        payload.setdefault("design_mode", "Nominal")
        payload.setdefault("setup_name", "Setup1")
        payload.setdefault("project_path", "")
        if not payload.get("scheduler_options"):
            payload["scheduler_options"] = {}
        if payload.get("layout_options") is None:
            payload["layout_options"] = {}
        return cls.model_validate(payload)

    @classmethod
    def create(
        cls,
        project_path: str,
        jobid: str | None = "",
        ansys_edt_path: str | None = "",
        design_name: str | None = "",
        setup_name: str | None = "",
        machine_nodes: list[MachineNode] | None = None,
        scheduler_type: SchedulerType = SchedulerType.NONE,
        scheduler_options: SchedulerOptions | None = None,
        **kwargs: Any,
    ) -> Self:
        """A validated config in one call: PyEDB's ``create_hfss_config`` (the module
        function of that name is this method).

        ``machine_nodes`` defaults to ``[MachineNode()]`` and ``scheduler_options``
        to ``SchedulerOptions()``; other keyword arguments go to the config as fields.
        """
        return cls(
            ansys_edt_path=ansys_edt_path or "",
            jobid=jobid or "",
            project_path=project_path,
            design_name=design_name or "",
            setup_name=setup_name or "",
            machine_nodes=machine_nodes if machine_nodes is not None else [MachineNode()],
            scheduler_type=scheduler_type,
            scheduler_options=scheduler_options
            if scheduler_options is not None
            else SchedulerOptions(),
            **kwargs,
        )

    def __str__(self) -> str:
        return (
            f"HFSSSimulationConfig(jobid={self.jobid}, project={self.project_path}, "
            f"scheduler={self.scheduler_type.value})"
        )


create_hfss_config = HFSSSimulationConfig.create


def pyedb_dict(dump: dict[str, Any], timestamp: str | None = None) -> dict[str, Any]:
    """PyEDB's ``to_dict`` of a config from its JSON dump (``model_dump(mode="json")`` or
    :meth:`~_Model.dump_of_stored`): the dump with PyEDB's bookkeeping keys
    (``timestamp``: now unless given, as PyEDB stamps every call)."""
    return {**dump, "platform": platform.system(),
            "timestamp": timestamp or datetime.now().isoformat(), "version": "1.0.0"}

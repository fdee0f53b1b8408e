"""Request and response models shared by the gateway, the workers and the clients."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simfarm.common.accounts import check_account_name
from simfarm.common.deps import Dependencies
from simfarm.common.files import ProjectFiles, ResultsInfo
from simfarm.common.hfss import HFSSSimulationConfig, SchedulerOptions
from simfarm.common.hfss_licensing import JobLicensing
from simfarm.common.names import check_name
from simfarm.common.notify import NotifySpec
from simfarm.common.states import JobState
from simfarm.common.usage import AttemptUsage

MAX_ARGV_ITEMS = 4096
MAX_ARG_LENGTH = 32_768
MAX_ENV_ITEMS = 256
MAX_LABELS = 64
MAX_CORES = 4096
MAX_LICENSES = 10_000  # of one feature, per job
MAX_JOBS_PER_QUERY = 1000  # ids of one POST /api/v1/jobs/query
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.\-/]{1,64}$")
# Variables a job may not set (a documented denylist, docs/security.md): they make the
# dynamic loader, a shell or an interpreter load code of the submitter's choosing into
# the program simfarm starts (ansysedt for an hfss job, the scripts of cluster jobs), or
# change which program runs. Names are compared in upper case; a trailing * is a prefix.
FORBIDDEN_ENV = (
    "LD_*", "DYLD_*",  # loaders (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...; macOS)
    "PATH", "IFS", "BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4",
    "PROMPT_COMMAND", "GLOBIGNORE", "CDPATH",  # shells
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE",
    "PYTHONWARNINGS", "PYTHONBREAKPOINT", "PYTHONINSPECT",  # Python
    "PERL5LIB", "PERLLIB", "PERL5OPT", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS", "NODE_PATH",
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",  # others
    "TCL_LIBRARY", "TK_LIBRARY", "GCONV_PATH", "LOCPATH", "MALLOC_*", "GLIBC_TUNABLES",
)


def forbidden_env(name: str) -> bool:
    """Whether a job may not set the environment variable ``name``."""
    upper = name.upper()
    return any(upper.startswith(p[:-1]) if p.endswith("*") else upper == p
               for p in FORBIDDEN_ENV)

Priority = Annotated[int, Field(ge=0, le=10, description="0 (lowest) to 10 (highest)")]


class StrictModel(BaseModel):
    """Base for every API model: unknown fields are rejected, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ResourceRequest(StrictModel):
    """What a job needs from the node that runs it."""

    cores: int = Field(default=1, ge=1, le=MAX_CORES, description="CPU cores")
    memory_mb: int = Field(default=0, ge=0, le=16 * 1024 * 1024, description="memory in MiB")
    disk_mb: int = Field(default=0, ge=0, le=1024 * 1024 * 1024, description="scratch disk in MiB")
    labels: dict[str, str] = Field(
        default_factory=dict, description="node labels that must match, e.g. {'os': 'linux'}"
    )
    licenses: dict[str, int] = Field(
        default_factory=dict,
        description="licences needed, e.g. {'anshpc': 8}: a farm pool's name draws from the "
        "pool, any other name is a token of the node; an HFSS job's follow from its cores",
    )

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels")
        for key, label in value.items():
            check_name(key, _LABEL_KEY, "label name")
            if len(label) > 256:
                raise ValueError(f"label {key!r} value longer than 256 characters")
        return value

    @field_validator("licenses")
    @classmethod
    def _check_licenses(cls, value: dict[str, int]) -> dict[str, int]:
        for key, count in value.items():
            check_name(key, _LABEL_KEY, "licence name")
            if count < 1 or count > MAX_LICENSES:
                raise ValueError(f"licence {key!r} count must be between 1 and {MAX_LICENSES}")
        return value


class JobSpec(StrictModel):
    """What a user asks simfarm to run."""

    name: str = Field(default="", max_length=200, description="human-readable name")
    kind: Literal["command", "hfss"] = Field(default="command")
    argv: list[str] = Field(
        default_factory=list, description="program and arguments; never run through a shell"
    )
    cwd: str | None = Field(default=None, max_length=4096, description="working directory")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    priority: Priority = 5
    resources: ResourceRequest = Field(
        default_factory=ResourceRequest,
        description="what the job needs from its node; an HFSS job's unset cores and "
        "routing label follow from its configuration at submit",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=30 * 24 * 3600,
        description="wall-clock limit in seconds (an HFSS job: its wall time when unset)",
    )
    retries: int = Field(default=0, ge=0, le=10, description="re-runs allowed after a lost worker")
    owner: str | None = Field(default=None, max_length=200)
    account: str | None = Field(
        default=None,
        description="the account (project, cost centre) the job charges; default: the "
        "owner's default account (GET /api/v1/accounts)",
    )
    hfss: HFSSSimulationConfig | None = Field(
        default=None, description="the HFSS batch solve of a kind='hfss' job (PyEDB's config)"
    )
    depends_on: Dependencies | None = Field(
        default=None, description="jobs or sweeps this job waits for (after_ok/any/failed)"
    )
    files: ProjectFiles | None = Field(
        default=None, description="shared-storage (default) or staged project files"
    )
    cluster: SchedulerOptions | None = Field(
        default=None,
        description="scheduler directives (queue, time, nodes, memory...) used when a worker "
        "forwards this job to a cluster; HFSS jobs use hfss.scheduler_options",
    )
    licensing: JobLicensing | None = Field(
        default=None,
        description="an HFSS job's licence scheme and parallel variations, when they differ "
        "from the farm's (docs/licences.md)",
    )
    notify: NotifySpec | None = Field(
        default=None, description="webhooks and e-mail addresses to notify when it ends "
        "(docs/notifications.md); in a sweep's template: when the sweep ends",
    )

    @field_validator("account")
    @classmethod
    def _check_account(cls, value: str | None) -> str | None:
        return check_account_name(value) if value is not None else None

    @field_validator("argv")
    @classmethod
    def _check_argv(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_ARGV_ITEMS:
            raise ValueError(f"at most {MAX_ARGV_ITEMS} arguments")
        if value and not value[0]:
            raise ValueError("program (argv[0]) must not be empty")
        for arg in value:
            if len(arg) > MAX_ARG_LENGTH:
                raise ValueError(f"argument longer than {MAX_ARG_LENGTH} characters")
            if "\x00" in arg:
                raise ValueError("arguments must not contain NUL bytes")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_ENV_ITEMS:
            raise ValueError(f"at most {MAX_ENV_ITEMS} environment variables")
        for key, item in value.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"environment variable name {key!r} is not valid")
            if forbidden_env(key):
                raise ValueError(f"environment variable {key!r} may not be set by a job")
            if "\x00" in item or len(item) > MAX_ARG_LENGTH:
                raise ValueError(f"environment variable {key!r} has an invalid value")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> JobSpec:
        if self.kind == "command" and not self.argv:
            raise ValueError("argv must be a non-empty list of strings for command jobs")
        if self.kind == "command" and self.hfss is not None:
            raise ValueError("hfss is only allowed with kind 'hfss'")
        if self.kind == "hfss":
            if self.hfss is None:
                raise ValueError("hfss jobs need an 'hfss' configuration")
            if self.argv:
                raise ValueError("hfss jobs build their own ansysedt command: leave argv empty")
        return self

    def submit_body(self) -> dict[str, Any]:
        """This spec as the JSON body of a submit: unset optional fields left out, and
        ``resources`` only as far as they were given, so the gateway settles the rest
        (an HFSS job's from its configuration)."""
        body = self.model_dump(mode="json", exclude_none=True)
        if "resources" in self.model_fields_set:
            body["resources"] = self.resources.model_dump(mode="json", exclude_unset=True)
        else:
            body.pop("resources", None)
        return body


class Lease(BaseModel):
    """The hold of a job's current attempt on the worker that runs it (or was sent it).

    The worker renews ``until`` every heartbeat; once it has passed (plus a margin), or
    the worker process named by ``boot`` was replaced, the dispatcher hands the attempt
    on. A worker that cannot renew stops its own run when ``until`` passes."""

    until: datetime | None = Field(
        default=None, description="the attempt is the worker's until then"
    )
    boot: str | None = Field(
        default=None, description="boot id of the worker process the attempt was sent to or runs in"
    )
    claimed: bool = Field(
        default=False, description="a scheduler worker took the attempt while it is still queued"
    )
    pid: int | None = Field(
        default=None, description="the run's process (group leader) on the node"
    )


class Job(BaseModel):
    """A job as stored and reported: the spec plus everything simfarm knows about it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    spec: JobSpec
    state: JobState
    priority: Priority
    created_at: datetime
    updated_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    node: str | None = None
    attempt: int = 0
    exit_code: int | None = None
    error: str | None = None
    reason: str | None = Field(default=None, description="why the job is where it is")
    cancel_requested: bool = False
    owner: str | None = None
    progress: dict[str, Any] | None = None
    native_id: str | None = Field(default=None, description="cluster job id, if forwarded")
    native_scheduler: str | None = Field(
        default=None, description="the scheduler (slurm, lsf...) that native_id belongs to"
    )
    native_cluster: str | None = Field(
        default=None, description="the cluster (<scheduler>:<cluster name>) native_id "
        "belongs to: any worker of it can follow the job"
    )
    lease: Lease | None = Field(
        default=None, description="the current attempt's lease (scheduled and running jobs)"
    )
    losses: int = Field(default=0, description="attempts that ended because their worker was lost")
    licenses_held: dict[str, int] | None = Field(
        default=None,
        description="licences of farm pools the current attempt holds (drawn when it was "
        "placed, returned when it ends)",
    )
    artifacts: list[str] = Field(default_factory=list)
    gate: str | None = Field(
        default=None,
        description="why a pending job may not start yet: 'dependencies' or 'throttle' "
        "(a user's hold is the state 'held')",
    )
    held_by: str | None = Field(
        default=None, description="who holds the job (state 'held'); an admin's hold is "
        "released by an admin only"
    )
    dependencies: dict[str, list[str]] | None = Field(
        default=None, description="resolved dependencies: condition -> job ids"
    )
    sweep_id: str | None = Field(default=None, description="the sweep this job belongs to")
    sweep_index: int | None = Field(default=None, description="index within its sweep")
    variation: dict[str, Any] | None = Field(default=None, description="its sweep variables")
    resubmit_of: str | None = Field(default=None, description="the job this one re-runs")
    resubmitted_as: str | None = Field(default=None, description="latest re-run of this job")
    results: ResultsInfo | None = Field(default=None, description="uploaded results (staged)")
    usage: list[AttemptUsage] = Field(
        default_factory=list, description="what each ended attempt used (usage accounting: "
        "docs/operations.md#usage-accounting)")

    @property
    def final(self) -> bool:
        """True once the job can no longer change."""
        return self.state.final

    def _repr_html_(self) -> str:
        """Jupyter's view of the job: a table of its main facts."""
        from simfarm.common.job_html import job_table

        return job_table(self)


class JobEvent(BaseModel):
    """One entry of a job's event stream: a transition, a log line or progress."""

    id: str = Field(description="monotonic event id (Redis stream id)")
    job_id: str
    type: Literal["state", "log", "progress", "info"]
    ts: float
    data: dict[str, Any]


class JobQuery(BaseModel):
    """Many jobs read by id in one request (``POST /api/v1/jobs/query``)."""

    ids: list[str] = Field(min_length=1, max_length=MAX_JOBS_PER_QUERY,
                           description="job ids (at most 1000); repeated ids count once")


class JobBatch(BaseModel):
    """Jobs read by id: those found, in the order asked, and the ids of the others
    (no such job, or another user's)."""

    jobs: list[Job]
    missing: list[str] = Field(default_factory=list)


class JobPage(BaseModel):
    """One page of a job listing."""

    jobs: list[Job]
    next_cursor: str | None = None

    def _repr_html_(self) -> str:
        """Jupyter's view of the page: one row per job."""
        from simfarm.common.job_html import jobs_table

        return jobs_table(self.jobs)


class NodeDrain(BaseModel):
    """An admin's drain of a node: it takes no new jobs; those it runs finish."""

    by: str | None = Field(default=None, description="who drained it")
    at: float = Field(description="when (epoch seconds)")
    reason: str = Field(default="", max_length=200, description="why, in the admin's words")

    def describe(self) -> str:
        """The drain in words, as a node's hold reads."""
        who = f" by {self.by}" if self.by else ""
        return f"drained{who}" + (f": {self.reason}" if self.reason else "")


class NodeInfo(BaseModel):
    """A worker node as registered in the farm, with its capacity and free resources."""

    model_config = ConfigDict(extra="ignore")

    name: str
    hostname: str
    queue: str = Field(description="Celery queue that feeds this node")
    os: str = ""
    cores_total: int = 0
    memory_mb_total: int = 0
    disk_mb_total: int = 0
    cores_free: int = 0
    memory_mb_free: int = 0
    disk_mb_free: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    licenses: dict[str, int] = Field(default_factory=dict)
    max_jobs: int = 1
    jobs: list[str] = Field(default_factory=list, description="jobs scheduled or running here")
    alive: bool = True
    last_seen: float = 0.0
    held_reason: str | None = Field(default=None, description="why the node takes no new jobs")
    boot_id: str = Field(default="", description="changes every time the worker restarts")
    limits: dict[str, Any] = Field(
        default_factory=dict, description="local limits in force (see NodeLimits)"
    )
    drain: NodeDrain | None = Field(
        default=None, description="set while an admin drains the node (it takes no new jobs)"
    )

    @property
    def availability(self) -> str:
        """``lost``, ``drained`` (drained, no job left), ``draining`` (drained, its jobs
        still running), ``held`` (a local limit is hit) or ``up``."""
        if not self.alive:
            return "lost"
        if self.drain is not None:
            return "draining" if self.jobs else "drained"
        return "held" if self.held_reason else "up"

    @property
    def closed_reason(self) -> str | None:
        """Why the node takes no new jobs (a drain, else a local limit), or None."""
        return self.drain.describe() if self.drain is not None else self.held_reason

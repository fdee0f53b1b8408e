"""Settings from the environment (prefix ``SIMFARM_``) and an optional TOML file."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from simfarm.common.accounts import Account, AccountBook, check_account_name, check_unique_accounts
from simfarm.common.hfss_licensing import HfssLicensing
from simfarm.common.license_pools import LicensePool, check_unique
from simfarm.common.tokens import TokenEntry
from simfarm.common.user_limits import Limits

#: What a job inherits from the worker's environment by default: the locale, the
#: program search path, temporary folders, Windows' own variables, Ansys and licence
#: settings, GPU selection. Never credentials or simfarm's own settings.
DEFAULT_JOB_ENV_INHERIT = (
    "PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TEMP", "TMP",
    "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE", "PROGRAMFILES", "PROGRAMFILES(X86)", "PROGRAMDATA",
    "ANSYSEM_*", "ANSYS*", "AWP_ROOT*", "*_LICENSE_FILE", "LM_LICENSE_FILE",
    "CUDA_VISIBLE_DEVICES",
)


def redact_url(url: str) -> str:
    """``url`` with its passwords replaced by ``***`` (for log lines)."""
    from simfarm.common.redis_url import redact

    return redact(url)


def _default_state_dir() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "simfarm"


class Settings(BaseSettings):
    """Every setting of simfarm. Environment variables win over the TOML file
    (``SIMFARM_CONFIG``, default ``simfarm.toml`` in the working directory)."""

    model_config = SettingsConfigDict(env_prefix="SIMFARM_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Redis URL (`redis://`, `rediss://`, `unix://`, or "
        "`redis+sentinel://host1:26379,host2:26379,host3:26379/primary-name/0` for a primary "
        "watched by Redis Sentinel); unset means `simfarm up` starts a private redis-server",
    )
    redis_wait_replicas: int | None = Field(
        default=None, ge=0,
        description="a submit is acknowledged (gateway), and a worker's claim of an attempt "
        "(before the program starts) and its outcome taken as recorded, only once this many "
        "Redis replicas have it (Redis WAIT), so a failover cannot lose it (a worker retries "
        "for up to `heartbeat_ttl_s`, then carries on); default 1 with a "
        "`redis+sentinel://` URL, else 0 (no wait)",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000, ge=1,
        description="how long one WAIT for those replicas lasts; past it a submit answers "
        "503 (retry it with the same Idempotency-Key), a worker tries again",
    )
    key_prefix: str = Field(default="simfarm:", description="prefix of every Redis key")
    state_dir: Path = Field(
        default_factory=_default_state_dir, description="folder for embedded Redis data and logs"
    )
    gateway_host: str = Field(default="127.0.0.1", description="address the gateway binds")
    gateway_port: int = Field(default=8765, ge=0, le=65535, description="gateway TCP port")
    gateway_threads: int = Field(
        default=64, ge=4, le=4096, description="gthread workers: threads per gateway process"
    )
    gateway_processes: int = Field(
        default=1, ge=1, le=64,
        description="gateway processes (POSIX); more use more cores for the REST API; "
        "WebSocket clients and /metrics histograms are then per process",
    )
    gateway_worker_class: Literal["gevent", "gthread"] = Field(
        default="gevent",
        description="gunicorn worker: gevent (a greenlet per connection: thousands of "
        "WebSocket and slow clients) or gthread (a thread per busy connection)",
    )
    gateway_connections: int = Field(
        default=10_000, ge=16, le=1_000_000,
        description="gevent: connections one gateway process holds at once (more wait)",
    )
    gateway_client_connections: int = Field(
        default=1024, ge=1, le=1_000_000,
        description="gevent: connections one client address may hold at once (more get "
        "503); behind a reverse proxy every client has the proxy's address",
    )
    gateway_header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="a request's line and headers must arrive within this (also the "
        "keep-alive idle time)",
    )
    gateway_read_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="gevent: a connection silent this long while a request body is read "
        "or an answer sent is closed",
    )
    gateway_stop_grace_s: float = Field(
        default=5.0, gt=0, le=3600,
        description="a stopping gateway gives the requests in flight this long to finish "
        "(idle keep-alive connections are closed at once)",
    )
    url: str | None = Field(default=None, description="gateway URL used by clients and the CLI")
    token: str | None = Field(default=None, description="bearer token used by clients")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="largest API body")
    auth_tokens: list[TokenEntry] = Field(
        default_factory=list,
        description="accepted bearer tokens, hashed (`simfarm hash-token`); when set, every "
        "API call needs one; required when the gateway binds a non-loopback address",
    )
    gateway_hostnames: list[str] = Field(
        default_factory=list,
        description="host names the gateway answers to besides this machine's names, "
        "localhost and IP addresses (others get 400: DNS rebinding); '*' allows any",
    )
    gateway_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks (10.0.0.5, 10.0.0.0/24) of load balancers in "
        "front of the gateway: for their requests the client's address (logs, audit) is "
        "the last untrusted one of X-Forwarded-For",
    )
    gateway_origins: list[str] = Field(
        default_factory=list,
        description="other web origins (https://host:port) allowed to open WebSockets and "
        "make state-changing requests; the gateway's own origin always is",
    )
    login_code_sha256: str | None = Field(
        default=None,
        description="gateway of `simfarm up`: SHA-256 of the one-time dashboard login code",
    )
    local_token: str | None = Field(
        default=None,
        description="gateway of `simfarm up`: the owner's token, handed to the browser that "
        "opens the one-time login URL",
    )
    accounts: list[Account] = Field(
        default_factory=list,
        description="accounts jobs charge ([[accounts]] tables: name, shares, users, groups, "
        "user_shares); docs/operations.md",
    )
    default_account: str = Field(
        default="default",
        description="the account of users who belong to no account (empty: such users "
        "cannot submit)",
    )
    limits: Limits = Field(
        default_factory=Limits,
        description="what one user or account may hold at once ([limits] tables: default, "
        "users.<name>, accounts.<name>, each with max_running_jobs, max_cores, "
        "max_pending_jobs, max_licenses); docs/scheduling.md",
    )
    fairshare_half_life_s: float = Field(
        default=86400.0, gt=0,
        description="fair share: usage (core-seconds and pool licence-seconds) counts half "
        "after this long",
    )
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="folders that job paths (cwd, project files) must lie under; "
        "empty allows any absolute path",
    )
    node_name: str = Field(
        default_factory=socket.gethostname, description="stable name of this worker node"
    )
    node_labels: dict[str, str] = Field(default_factory=dict, description="extra node labels")
    node_licenses: dict[str, int] = Field(
        default_factory=dict, description="licence tokens this node holds"
    )
    licenses: list[LicensePool] = Field(
        default_factory=list,
        description="floating licence pools the whole farm shares ([[licenses]] tables: "
        "name, count, optional FlexLM server port@host, vendor feature and cluster name); "
        "docs/licences.md",
    )
    license_lmutil: str = Field(
        default="lmutil",
        description="FlexLM's lmutil (lmutil.exe on Windows): a path or a name on PATH; "
        "the dispatcher leader runs `lmutil lmstat -a -c port@host` for pools with a server",
    )
    license_poll_s: float = Field(
        default=30.0, ge=0, description="how often each licence server is polled (0 = never)"
    )
    license_poll_timeout_s: float = Field(
        default=15.0, gt=0, description="an lmstat that takes longer counts as no answer"
    )
    license_grace_s: float = Field(
        default=300.0, ge=0,
        description="a server that stops answering keeps its last good figures this long; "
        "then the pool falls back to its configured count, with a warning",
    )
    hfss_licensing: HfssLicensing = Field(
        default_factory=HfssLicensing,
        description="how HFSS jobs' licences follow from their cores: scheme (workgroup, "
        "pack, none) and the server's feature names; only pools the farm counts are asked for",
    )
    node_cores: int | None = Field(
        default=None, ge=1, description="cores this node offers (default: all CPUs); set it "
        "on each worker when several share one host, or each offers the whole machine"
    )
    node_memory_mb: int | None = Field(
        default=None, ge=1, description="memory this node offers in MiB (default: all RAM); "
        "set it like node_cores when several workers share one host"
    )
    worker_concurrency: int = Field(
        default=4, ge=1, le=1024, description="jobs this worker runs at once"
    )
    node_max_cpu_percent: float | None = Field(
        default=None, gt=0, le=100,
        description="local limit: take no new job while CPU use is above this (API can change)",
    )
    node_max_memory_percent: float | None = Field(
        default=None, gt=0, le=100,
        description="local limit: take no new job while memory use is above this",
    )
    node_min_free_disk_mb: int | None = Field(
        default=None, ge=0, description="local limit: take no new job while free disk is below"
    )
    dispatch_backfill: Literal["reservation", "none", "greedy"] = Field(
        default="reservation",
        description="reservation: later jobs start first only if that cannot delay a blocked "
        "job's reservation; none: strict order; greedy: first fit (large jobs can starve)",
    )
    dispatch_unlimited_runtime_s: float = Field(
        default=4 * 3600.0, gt=0,
        description="how long the dispatcher assumes a running job without a time limit "
        "takes, when planning reservations",
    )
    dispatch_aging_s: float | None = Field(
        default=3600.0, gt=0,
        description="seconds of waiting worth one priority level (unset: strict priority)",
    )
    dispatch_fairshare_s: float = Field(
        default=86400.0, ge=0,
        description="seconds of waiting a fair-share factor of 1 is worth in the dispatch "
        "order (users and accounts furthest below their share first; 0: no fair share)",
    )
    dispatch_size_credit_s: float = Field(
        default=450.0, ge=0,
        description="seconds of waiting each requested core is worth in the dispatch order "
        "(with aging; 0: no size credit): large jobs, which need a node to drain, go first",
    )
    task_events: bool = Field(
        default=False,
        description="Celery task events from every worker from its start; off, a worker "
        "sends none until Flower, when it runs, turns them on (each costs Redis commands)",
    )
    heartbeat_s: float = Field(default=2.0, gt=0, description="worker heartbeat interval")
    heartbeat_ttl_s: float = Field(
        default=10.0, gt=0, description="a node whose heartbeat is older is lost"
    )
    visibility_timeout_s: int = Field(
        default=8 * 24 * 3600,
        ge=60,
        description="Redis broker visibility timeout; must exceed the longest job",
    )
    events_per_job: int = Field(default=10_000, ge=10, description="cap of each job's event stream")
    events_global: int = Field(default=200_000, ge=100, description="cap of the global stream")
    ws_heartbeat_s: float = Field(
        default=15.0, gt=0, le=3600, description="idle seconds before a WebSocket heartbeat message"
    )
    ws_ping_s: float = Field(
        default=20.0, gt=0, le=3600, description="WebSocket ping interval; a missed pong closes"
    )
    ws_queue_size: int = Field(
        default=1000, ge=10, le=1_000_000, description="events queued per WebSocket client before "
        "it is dropped as too slow (close code 4008)"
    )
    ws_send_buffer_bytes: int = Field(
        default=256 * 1024, ge=4096, description="kernel send buffer of each WebSocket connection"
    )
    ws_send_timeout_s: float = Field(
        default=30.0, gt=0, description="a WebSocket send blocked this long drops the client"
    )
    ws_max_clients: int | None = Field(
        default=None, ge=1, description="WebSocket clients at once per gateway process "
        "(default: 5000 with gevent workers, 3/4 of the threads with gthread)"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="log lines as text or JSON (job id and node in each line)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="logging level of services (any case: info, WARNING...)"
    )
    job_user: str | None = Field(
        default=None,
        description="worker: run jobs as this unprivileged OS account (POSIX; the worker "
        "must run as root to switch); unset: jobs run as the worker's own account",
    )
    job_env_inherit: list[str] = Field(
        default_factory=lambda: list(DEFAULT_JOB_ENV_INHERIT),
        description="worker: variables of the worker's environment a job inherits (names "
        "or shell patterns); nothing else reaches it (no credentials, no simfarm settings)",
    )
    worker_dispatch: bool = Field(
        default=True,
        description="worker: take part in electing the dispatcher (needs the Redis "
        "'dispatcher' user); false for workers connecting as the 'worker' user",
    )
    dispatcher_process: bool = Field(
        default=True,
        description="worker: run the dispatcher in a process of its own beside the worker "
        "(restarted if it dies, stopped with the worker) instead of a thread of the worker; "
        "a thread shares one interpreter lock with the jobs' supervisors",
    )
    kill_grace_s: float = Field(
        default=5.0, ge=0, description="seconds between SIGTERM and SIGKILL on cancel/timeout"
    )
    orphan_finish_s: float = Field(
        default=0.5, ge=0, le=60,
        description="when a worker dies, its orphan guard gives the job programs this long "
        "to end by themselves (then recorded as they ended, not run again) before it stops "
        "them; keep it well below heartbeat_ttl_s",
    )
    scheduler: str | None = Field(
        default=None,
        description="forward this worker's jobs to a cluster: slurm, lsf, pbs or windows_hpc",
    )
    scheduler_cluster: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.@-]{1,128}$",
        description="the cluster's name: a worker takes over the cluster jobs of a lost "
        "worker of the same scheduler and cluster name (default: the name the cluster "
        "gives itself, SLURM's ClusterName; else this node's name)",
    )
    scheduler_bin_dir: Path | None = Field(
        default=None, description="folder of the scheduler's commands (default: PATH)"
    )
    scheduler_options: dict[str, Any] = Field(
        default_factory=dict,
        description="default scheduler options (queue, time, memory...) for forwarded jobs",
    )
    scheduler_extra: dict[str, str] = Field(
        default_factory=dict,
        description="backend settings: PBS flavour (pro|torque), HPC Pack node_os, SLURM "
        "accounting",
    )
    scheduler_job_dir: Path | None = Field(
        default=None,
        description="shared folder, visible from compute nodes, for job scripts and outputs "
        "(default: <state_dir>/cluster-jobs)",
    )
    scheduler_poll_s: float = Field(default=5.0, gt=0, description="fastest cluster poll interval")
    scheduler_poll_max_s: float = Field(
        default=60.0, gt=0, description="slowest cluster poll interval while nothing changes"
    )

    # --- project files, sweeps and history -------------------------------------------
    file_mode: Literal["shared", "staged"] = Field(
        default="shared",
        description="how clients send HFSS projects unless told: shared storage or staged upload",
    )
    path_map: dict[str, str] = Field(
        default_factory=dict,
        description="worker: path prefixes as submitted -> as this node mounts them, e.g. "
        '{"\\\\\\\\fs01\\\\sim": "/mnt/sim"}',
    )
    blob_dir: Path | None = Field(
        default=None, description="gateway: blob store folder (default: <state_dir>/blobs)"
    )
    max_upload_bytes: int = Field(
        default=50 * 1024**3, ge=1024, description="gateway: largest project/results upload (413)"
    )
    upload_part_retention_s: float = Field(
        default=24 * 3600.0, gt=0,
        description="gateway: an interrupted upload (.part) untouched this long is deleted",
    )
    upload_quota_bytes: int | None = Field(
        default=100 * 1024**3, ge=1024,
        description="gateway: bytes one user's uploads may hold in the blob store (blobs "
        "they uploaded and still stored, plus unfinished uploads); unset: no quota",
    )
    blob_min_free_bytes: int = Field(
        default=2 * 1024**3, ge=0,
        description="gateway: uploads stop (507) before the blob folder's disk has less free "
        "space than this, so they never fill the disk Redis writes to",
    )
    worker_gateway_url: str | None = Field(
        default=None,
        description="worker: gateway URL where it fetches staged projects and uploads results "
        "(default: url, else gateway_host:gateway_port)",
    )
    scratch_dir: Path | None = Field(
        default=None, description="worker: per-job scratch folders (default: <state_dir>/scratch)"
    )
    scratch_retention_s: float = Field(
        default=7 * 24 * 3600.0, ge=0, description="worker: keep a failed job's scratch this long"
    )
    job_retention_s: float = Field(
        default=30 * 24 * 3600.0, gt=0, description="gateway: keep finished jobs this long"
    )
    expiry_interval_s: float = Field(
        default=60.0, ge=0, description="gateway: retention sweep interval (0 = off)"
    )
    usage_retention_days: int = Field(
        default=400, ge=1, le=36_600,
        description="gateway: keep the usage roll-ups (GET /api/v1/usage) this many UTC "
        "days; older days are deleted by the retention sweep"
    )
    stats_bucket_s: float = Field(
        default=60.0, ge=1, le=3600,
        description="farm time series: bucket length (one point per series per bucket)",
    )
    stats_buckets: int = Field(
        default=7 * 24 * 60, ge=10, le=1_000_000,
        description="farm time series: buckets kept per series (a week of minutes)",
    )
    stats_coarse_bucket_s: float = Field(
        default=3600.0, ge=60,
        description="farm time series: bucket of the coarser tier kept beyond that",
    )
    stats_coarse_buckets: int = Field(
        default=366 * 24, ge=10, le=1_000_000,
        description="farm time series: coarse buckets kept per series (a year of hours)",
    )
    notify_attempts: int = Field(
        default=12, ge=1, le=100,
        description="notifications: attempts per delivery before it is given up",
    )
    notify_backoff_s: float = Field(
        default=10.0, gt=0,
        description="notifications: wait after a failed attempt, doubling each time",
    )
    notify_backoff_max_s: float = Field(
        default=1800.0, gt=0, description="notifications: longest wait between attempts",
    )
    notify_timeout_s: float = Field(
        default=10.0, gt=0, description="notifications: time a receiver has to answer",
    )
    smtp_host: str | None = Field(
        default=None, description="notifications by e-mail: SMTP server (unset: no e-mail)",
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port")
    smtp_from: str = Field(default="simfarm@localhost", description="sender of e-mails")
    smtp_user: str | None = Field(default=None, description="SMTP login (with smtp_password)")
    smtp_password: str | None = Field(default=None, description="SMTP password")
    smtp_starttls: bool = Field(default=False, description="upgrade the SMTP connection (TLS)")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        name = value.strip().upper()
        return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)  # logging's aliases

    @field_validator("licenses")
    @classmethod
    def _unique_pools(cls, value: list[LicensePool]) -> list[LicensePool]:
        return check_unique(value)

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, value: list[Account]) -> list[Account]:
        return check_unique_accounts(value)

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a network (10.0.0.5, "
                                 "10.0.0.0/24)") from None
        return value

    @field_validator("default_account")
    @classmethod
    def _check_default_account(cls, value: str) -> str:
        return check_account_name(value) if value else value

    @model_validator(mode="after")
    def _check_token_accounts(self) -> Settings:
        self.account_book().check_token_defaults()
        return self

    def account_book(self) -> AccountBook:
        """The farm's accounts and their members (:mod:`simfarm.common.accounts`)."""
        return AccountBook(self.accounts, self.default_account, self.auth_tokens)

    def blob_root(self) -> Path:
        """The gateway's blob store folder."""
        return self.blob_dir or self.state_dir / "blobs"

    def scratch_root(self) -> Path:
        """The worker's scratch folder."""
        return self.scratch_dir or self.state_dir / "scratch"

    def gateway_url_for_workers(self) -> str:
        """Where workers reach the gateway for project and results blobs."""
        if self.worker_gateway_url:
            return self.worker_gateway_url.rstrip("/")
        if self.url:
            return self.url.rstrip("/")
        host = self.gateway_host if self.gateway_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.gateway_port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("SIMFARM_CONFIG", "simfarm.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
            file_secret_settings,
        )

    def wait_replicas(self) -> int:
        """How many replicas a submit waits for (``redis_wait_replicas`` or its default)."""
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if (self.redis_url or "").lower().startswith("redis+sentinel://") else 0

    def require_redis_url(self) -> str:
        """The Redis URL, or a clear error for components that cannot embed Redis."""
        if not self.redis_url:
            raise RuntimeError(
                "SIMFARM_REDIS_URL is not set; start the embedded service with `simfarm up`"
            )
        return self.redis_url

    def export_env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            key = f"SIMFARM_{name.upper()}"
            if isinstance(value, dict | list):
                import json

                out[key] = json.dumps(value)
            else:
                out[key] = str(value)
        return out

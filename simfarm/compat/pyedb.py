"""Drop-in replacement for PyEDB's job manager (``pyedb.workflows.job_manager``).

Change only the import line of a script written for PyEDB 0.64-0.65::

    # from pyedb.workflows.job_manager.backend.job_submission import create_hfss_config
    # from pyedb.workflows.job_manager.backend.job_manager_handler import JobManagerHandler
    from simfarm.compat.pyedb import JobManagerHandler, create_hfss_config

:class:`JobManagerHandler` behaves as PyEDB documents it: it detects the local AEDT
and scheduler, ``start_service()`` makes a job service available (it attaches to a
simfarm gateway already answering at ``host:port`` or ``SIMFARM_URL``, otherwise it
starts a private one: Redis, gateway and a worker on this machine, watched by a
daemon thread), ``submit_job(config)`` returns the job id (``config.jobid``),
``wait_until_done(id)`` returns ``completed``/``failed``/``cancelled``, and
``close()`` (also registered with ``atexit``) stops what it started.
:class:`JobManager` is the async twin.  Both run on simfarm's own
:class:`~simfarm.Client` / :class:`~simfarm.AsyncClient` (same token discovery,
transport, errors and waiting over the WebSocket): simfarm's API where it means the
same (wait, cancel), PyEDB's routes where PyEDB's semantics differ (job ids,
priorities, pool limits; see :mod:`simfarm.compat.pyedb_client`).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import platform
import shlex
import shutil
import subprocess
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from simfarm.client.client import Client
from simfarm.client.errors import ApiError, ConnectionFailed, NotFound
from simfarm.common import hfss as _models
from simfarm.common.hfss import (
    HFSS3DLayoutBatchOptions,
    MachineNode,
    SchedulerOptions,
    SchedulerType,
)
from simfarm.common.hfss_jobs import aedt_release
from simfarm.compat.pyedb_client import (
    AsyncPyEDBClient,
    JobSubmissionError,
    PyEDBClient,
    submit_body,
)

__all__ = [
    "HFSS3DLayoutBatchOptions",
    "HFSSSimulationConfig",
    "JobInfo",
    "JobManager",
    "JobManagerHandler",
    "JobStatus",
    "JobSubmissionError",
    "MachineNode",
    "ResourceLimits",
    "SchedulerOptions",
    "SchedulerType",
    "create_hfss_config",
]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"completed", "failed", "cancelled"})
START_TIMEOUT_S = 90.0
WATCH_INTERVAL_S = 2.0


class HFSSSimulationConfig(_models.HFSSSimulationConfig):
    """PyEDB's config with its command-line helpers and ``run_simulation``.

    Same fields and validation as :class:`simfarm.common.hfss.HFSSSimulationConfig`.
    """

    def _executable(self) -> str:
        if self.ansys_edt_path:
            return self.ansys_edt_path
        found = _local_ansysedt(None)
        if found is None:
            raise FileNotFoundError("no Ansys Electronics Desktop found on this machine: "
                                    "set ANSYSEM_ROOT<ver> or ansys_edt_path")
        return found

    def generate_command_list(self) -> list[str]:
        """The ``ansysedt`` argv (see :func:`simfarm.common.aedt.build_ansysedt_argv`)."""
        from simfarm.common.aedt import build_ansysedt_argv

        return build_ansysedt_argv(self, self._executable())

    def generate_command_string(self) -> str:
        """The same command quoted for this platform's shell (for display and scripts)."""
        argv = self.generate_command_list()
        if platform.system() == "Windows":
            return subprocess.list2cmdline(argv)
        return shlex.join(argv)

    def run_simulation(self, **subprocess_kwargs: Any) -> subprocess.CompletedProcess[str] | str:
        """Run now, as PyEDB did: locally, ``ansysedt`` runs in this process and its
        ``CompletedProcess`` is returned (argv list, never a shell); with a scheduler the
        job goes to the simfarm service and its id is returned."""
        if self.scheduler_type is not SchedulerType.NONE:
            return asyncio.run(JobManager().submit_job(self))
        options: dict[str, Any] = {"capture_output": True, "text": True, "encoding": "utf-8",
                                   "errors": "replace"}
        options.update(subprocess_kwargs)
        options.pop("shell", None)
        argv = self.generate_command_list()
        log.info("job %s: running %s", self.jobid, argv)
        result: subprocess.CompletedProcess[str] = subprocess.run(argv, check=False, **options)
        return result


#: PyEDB's factory (see :func:`simfarm.common.hfss.create_hfss_config`), building this
#: module's config
create_hfss_config = HFSSSimulationConfig.create


class JobStatus(StrEnum):
    """PyEDB's job states (string-valued, so ``status == "completed"`` works)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SCHEDULED = "scheduled"
    QUEUED = "queued"


@dataclass
class ResourceLimits:
    """PyEDB's per-host limits: a node takes no new job while one is exceeded."""

    max_concurrent_jobs: int = 1
    max_cpu_percent: float = 80.0
    min_memory_gb: float = 2.0
    min_disk_gb: float = 2.0


@dataclass
class JobInfo:
    """A job as PyEDB's ``JobManager.jobs`` shows it."""

    config: HFSSSimulationConfig
    status: JobStatus
    start_time: datetime | None = None
    end_time: datetime | None = None
    return_code: int | None = None
    scheduler_job_id: str | None = None
    priority: int = 0
    error: str = ""


def _detect_scheduler() -> SchedulerType:
    """As PyEDB: SLURM when ``sinfo`` is on PATH, LSF for ``bhosts``, else none."""
    if platform.system() == "Windows":
        return SchedulerType.NONE
    for command, kind in (("sinfo", SchedulerType.SLURM), ("bhosts", SchedulerType.LSF)):
        if shutil.which(command):
            return kind
    return SchedulerType.NONE


def _local_ansysedt(version: str | None) -> str | None:
    """Newest local ``ansysedt`` (of ``version``), or None: the farm's nodes may have it."""
    from simfarm.common.aedt import AEDTNotFoundError, find_aedt

    try:
        return str(find_aedt(version=version).executable)
    except AEDTNotFoundError:
        return None


def _job_info(data: dict[str, Any]) -> JobInfo:
    def when(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return JobInfo(
        config=HFSSSimulationConfig.from_dict(data["config"]),
        status=JobStatus(data["status"]),
        start_time=when(data.get("start_time")),
        end_time=when(data.get("end_time")),
        return_code=data.get("return_code"),
        scheduler_job_id=data.get("scheduler_job_id"),
        priority=int(data.get("priority") or 0),
        error=data.get("error") or "",
    )


def _submission_error(exc: ApiError) -> JobSubmissionError:
    return JobSubmissionError(f"Job submission failed: {exc.detail}")


def _unfinished(jobs: list[dict[str, Any]]) -> list[str]:
    return [j["id"] for j in jobs if j["status"] not in TERMINAL]


def _local_token(url: str, port: int | None) -> str | None:
    """The token of a service on this machine: ``SIMFARM_TOKEN``, or the local token of
    the ``simfarm up`` or private PyEDB service (its state folder) running at ``url``."""
    from simfarm.client.base import resolve_token, token_from_state
    from simfarm.common.settings import Settings

    token = resolve_token(None, url)
    if token is None and port is not None:
        token = token_from_state(Settings().state_dir / f"pyedb-{port}", url)
    return token


class _Service:
    """A simfarm service this process uses: found running, or started here."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.embedded: Any = None
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()

    @staticmethod
    def answers(url: str) -> bool:
        try:
            with Client(url, timeout=2) as client:
                client.health()
        except (ApiError, ConnectionFailed, ValueError):  # ValueError: not an http(s) URL
            return False
        return True

    @classmethod
    def attach_or_start(cls, url: str | None, host: str, port: int) -> _Service:
        for candidate in (url, os.environ.get("SIMFARM_URL"), f"http://{host}:{port}"):
            if candidate and cls.answers(candidate.rstrip("/")):
                return cls(candidate.rstrip("/"), _local_token(candidate.rstrip("/"), port))
        from simfarm.client.base import token_from_state
        from simfarm.client.embedded import EmbeddedService
        from simfarm.client.state_folder import StateFolderBusy, running_service
        from simfarm.common.settings import Settings

        settings = Settings()
        found = running_service(settings.state_dir)  # `simfarm up` here, as Client() finds
        if found is not None:
            return cls(found, token_from_state(settings.state_dir, found))
        # A folder of its own: never a second Redis on the data of `simfarm up`.
        settings.state_dir = settings.state_dir / f"pyedb-{port}"
        embedded = EmbeddedService(settings, gateway_port=port)
        try:
            embedded.start(timeout_s=START_TIMEOUT_S)
        except StateFolderBusy as exc:
            if exc.url is None:  # starting or stopping elsewhere: the message says who
                raise
            # another script's private service: share it (its token is in that folder)
            return cls(exc.url, token_from_state(settings.state_dir, exc.url))
        service = cls(embedded.url, embedded.local_token.token)
        service.embedded = embedded
        service._watch = threading.Thread(target=service._watchdog, daemon=True,
                                          name="simfarm-pyedb-service")
        service._watch.start()
        return service

    def _watchdog(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            dead = self.embedded.check_alive()
            if dead:
                log.error("simfarm service part %s exited; see its log in %s", dead,
                          self.embedded.state_dir / "logs")
                return

    def stop(self) -> None:
        self._stop.set()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


class JobManagerHandler:
    """Synchronous façade of the job service (PyEDB's ``JobManagerHandler``).

    ``version`` (e.g. ``"2025.2"``) routes jobs to nodes with that AEDT release;
    ``host``/``port`` is where the service answers (default
    ``$PYEDB_JOB_MANAGER_HOST:$PYEDB_JOB_MANAGER_PORT``, else ``localhost:8080`` as
    PyEDB); ``url`` points at an existing simfarm gateway instead. It talks to the
    service through a :class:`~simfarm.Client` (token from ``SIMFARM_TOKEN`` as for any
    client).
    """

    def __init__(self, edb: Any = None, version: str | None = None, host: str | None = None,
                 port: int | None = None, url: str | None = None) -> None:
        self.version = aedt_release(version) if version else None
        if edb is not None:
            exe = "ansysedt.exe" if platform.system() == "Windows" else "ansysedt"
            self.ansys_path: str | None = os.path.join(edb.base_path, exe)
        else:
            self.ansys_path = _local_ansysedt(self.version)
        self.scheduler_type = _detect_scheduler()
        self.host = host or os.environ.get("PYEDB_JOB_MANAGER_HOST", "localhost")
        self.port = port or int(os.environ.get("PYEDB_JOB_MANAGER_PORT", "8080"))
        self.resource_limits = ResourceLimits()
        self.started = False
        self._requested_url = url
        self._service: _Service | None = None
        self._client: PyEDBClient | None = None
        self.manager: JobManager | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    @property
    def url(self) -> str:
        """The service URL."""
        if self._service is not None:
            return self._service.url
        return self._requested_url or f"http://{self.host}:{self.port}"

    def start_service(self) -> None:
        """Make the job service available (attach or start it); idempotent."""
        with self._lock:
            if self.started:
                return
            self._service = _Service.attach_or_start(self._requested_url, self.host, self.port)
            self._client = PyEDBClient(self._service.url, token=self._service.token)
            self.manager = JobManager(self.resource_limits, self.scheduler_type,
                                      url=self._service.url, token=self._service.token)
            self.started = True
            log.info("job service at %s", self._service.url)

    def _started(self) -> PyEDBClient:
        if not self.started or self._client is None:
            raise RuntimeError("Job-manager service is not started")
        return self._client

    def submit_job(self, config: _models.HFSSSimulationConfig, priority: int = 0,
                   timeout: float = 30.0) -> str:
        """Queue ``config``; returns its job id (``config.jobid``)."""
        body = submit_body(config, priority, self.version, self.ansys_path)
        try:
            job_id = self._started().submit_config(body, timeout=timeout)
        except ApiError as exc:
            raise _submission_error(exc) from exc
        except ConnectionFailed as exc:
            if isinstance(exc.__cause__, httpx.TimeoutException):
                raise RuntimeError("Job submission timed out") from exc
            raise
        config.jobid = job_id
        return job_id

    def wait_until_done(self, job_id: str, poll_every: float = 2.0) -> str:
        """Block until the job is completed, failed or cancelled; return that status.

        The job is followed over the gateway's WebSocket (by polling where it has
        none); ``poll_every`` is kept for PyEDB's signature."""
        try:
            return self._started().wait(job_id).state.value
        except NotFound as exc:
            raise RuntimeError(f"Job {job_id} disappeared from manager") from exc

    def wait_until_all_done(self, poll_every: float = 2.0) -> None:
        """Block until every job the service knows is in a terminal state."""
        client = self._started()
        while pending := _unfinished(client.pyedb_jobs()):
            client.wait_all(pending)

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job; True when the cancel was accepted (a running
        job is then being stopped by its worker)."""
        try:
            self._started().cancel(job_id)
        except ApiError:
            return False
        return True

    def edit_concurrent_limits(self, update_data: dict[str, Any]) -> dict[str, Any] | None:
        """Change the pool limits (``max_concurrent_jobs``, ``max_cpu_percent``, ...)."""
        limits = self._started().set_pool_limits(update_data)
        for key, value in (limits or {}).items():
            if hasattr(self.resource_limits, key):
                setattr(self.resource_limits, key, value)
        return limits

    def create_simulation_config(self, project_path: str, ansys_edt_path: str | None = None,
                                 jobid: str | None = None,
                                 scheduler_type: SchedulerType | str | None = None,
                                 cpu_cores: int = 1, user: str = "unknown") -> HFSSSimulationConfig:
        """A validated config for one project on ``cpu_cores`` local cores (PyEDB helper)."""
        if not project_path:
            raise ValueError("Project path must be provided")
        cfg = create_hfss_config(
            ansys_edt_path=ansys_edt_path or "",
            jobid=jobid or f"{Path(project_path).stem}_{uuid.uuid4().hex[:6]}",
            project_path=project_path,
            scheduler_type=SchedulerType(str(scheduler_type).lower()) if scheduler_type
            else self.scheduler_type,
            machine_nodes=[MachineNode(hostname="localhost", cores=cpu_cores,
                                       max_cores=cpu_cores, utilization=90)],
        )
        cfg.user = user
        return cfg

    def close(self) -> None:
        """Stop what ``start_service`` started (a service found running is left alone)."""
        with self._lock:
            if not self.started:
                return
            self.started = False
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._service is not None:
                self._service.stop()
                self._service = None


class JobManager:
    """Async job service client (PyEDB's ``JobManager`` coroutines), on
    :class:`~simfarm.AsyncClient`.

    Without ``url`` it uses ``SIMFARM_URL`` or the service at ``localhost:8080``,
    starting a private one if none answers.
    """

    def __init__(self, resource_limits: ResourceLimits | None = None,
                 scheduler_type: SchedulerType = SchedulerType.NONE,
                 url: str | None = None, token: str | None = None) -> None:
        self.resource_limits = resource_limits or ResourceLimits()
        self.scheduler_type = scheduler_type
        self._url = url
        self._token = token or (_local_token(url, None) if url else None)
        self._service: _Service | None = None

    @property
    def url(self) -> str:
        """The service URL (starting the service if needed)."""
        if self._url is None:
            self._service = _Service.attach_or_start(None, "localhost", 8080)
            self._url = self._service.url
            self._token = self._service.token
            atexit.register(self._service.stop)
        return self._url

    def _client(self) -> AsyncPyEDBClient:
        # One client per call: an AsyncClient belongs to one event loop, and PyEDB's
        # JobManager is used from several (``asyncio.run`` in ``run_simulation``).
        url = self.url
        return AsyncPyEDBClient(url, token=self._token)

    async def submit_job(self, config: _models.HFSSSimulationConfig, priority: int = 0) -> str:
        """Queue ``config``; returns its job id."""
        async with self._client() as client:
            try:
                job_id = await client.submit_config(submit_body(config, priority))
            except ApiError as exc:
                raise _submission_error(exc) from exc
        config.jobid = job_id
        return job_id

    async def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job."""
        async with self._client() as client:
            try:
                await client.cancel(job_id)
            except ApiError:
                return False
        return True

    async def wait_until_all_done(self) -> None:
        """Return once every known job is completed, failed or cancelled."""
        async with self._client() as client:
            while pending := _unfinished(await client.pyedb_jobs()):
                await client.wait_all(pending)

    async def edit_concurrent_limits(self, update_data: dict[str, Any]) -> dict[str, Any] | None:
        """Change the pool limits; returns the new limits or None when refused."""
        async with self._client() as client:
            limits = await client.set_pool_limits(update_data)
        if limits is not None:
            self.resource_limits = ResourceLimits(**{**asdict(self.resource_limits), **limits})
        return limits

    @property
    def jobs(self) -> dict[str, JobInfo]:
        """Snapshot of every job, by id."""
        url = self.url
        with PyEDBClient(url, token=self._token) as client:
            return {item["id"]: _job_info(item) for item in client.pyedb_jobs()}

"""What both façades add to the core job calls: project files, sweeps, workflows (jobs
that depend on each other by local name), resubmit, history and audit.

:class:`ExtrasMixin` adds them to :class:`~simfarm.client.client.Client`,
:class:`AsyncExtrasMixin` to :class:`~simfarm.client.async_client.AsyncClient`. The
REST calls are the shared operations of :mod:`simfarm.client.extras_api`; blob
transfers (streamed to and from disk) are the shared functions of
:mod:`simfarm.client.files`, which the async twin runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from simfarm.client import api, files
from simfarm.client import extras_api as wapi
from simfarm.client.base import ClientConfig
from simfarm.client.errors import ApiError
from simfarm.common.files import ProjectFiles
from simfarm.common.hfss import HFSSSimulationConfig
from simfarm.common.models import Job, JobSpec
from simfarm.common.settings import Settings
from simfarm.common.sweeps import Sweep, SweepSpec

T = TypeVar("T")
Upload = Callable[[Path, "builtins.list[str] | None"], ProjectFiles]
ConfigLike = HFSSSimulationConfig | Mapping[str, Any] | None


def project_spec(upload: Upload, project: str | Path, *, staged: bool | None = None,
                 config: ConfigLike = None, outputs: builtins.list[str] | None = None,
                 **spec: Any) -> JobSpec:
    """The job spec of an HFSS run of ``project``; a staged one is uploaded first with
    ``upload`` (default mode: the ``file_mode`` setting)."""
    if staged is None:
        staged = Settings().file_mode == "staged"
    hfss = dict(config.model_dump(mode="json") if isinstance(config, HFSSSimulationConfig)
                else (config or {}))
    if staged:
        spec["files"] = upload(Path(project), outputs).model_dump(mode="json")
        hfss["project_path"] = Path(project).name
    else:
        hfss["project_path"] = str(project)
    return JobSpec.model_validate({"kind": "hfss", "hfss": hfss, **spec})


def _results_of(job: Job) -> Any:
    if job.results is None:
        raise ApiError(404, "not_found", f"job {job.id} has no results (yet): only staged "
                       "jobs upload results, once they end")
    return job.results


class ExtrasMixin:
    """Sync methods; the class needs ``_http`` (httpx.Client) and ``_call``."""

    _http: httpx.Client

    def _call(self, op: api.Operation[T]) -> T:
        raise NotImplementedError

    # ------------------------------------------------------------------ files
    def upload_file(self, path: str | Path, sha256: str | None = None) -> str:
        """Upload a file as a blob (skipped if the gateway has it); returns its SHA-256."""
        return files.upload_file(self._http, Path(path), sha256)

    def upload_project(self, project: str | Path,
                       outputs: builtins.list[str] | None = None) -> ProjectFiles:
        """Pack and upload a ``.aedt``/``.aedb`` project (deduplicated by SHA-256);
        returns the ``files`` section of a staged job."""
        return files.upload_project(self._http, Path(project), outputs)

    def download(self, job_id: str, dest: str | Path) -> Path:
        """Download a staged job's results into folder ``dest`` (checksum verified);
        returns ``dest``. ``ApiError`` 404 while the job has none."""
        job = self._call(api.get(job_id))
        files.download_results(self._http, _results_of(job), Path(dest))
        return Path(dest)

    def submit_project(self, project: str | Path, *, staged: bool | None = None,
                       config: ConfigLike = None, outputs: builtins.list[str] | None = None,
                       **spec: Any) -> Job:
        """Submit an HFSS job for a project: ``staged`` uploads it first (default: the
        ``file_mode`` setting), otherwise its path must be valid on the shared storage
        (mapped by each node's path rules)."""
        body = project_spec(self.upload_project, project, staged=staged, config=config,
                            outputs=outputs, **spec)
        return self._call(api.submit(body.submit_body()))

    # ------------------------------------------------------------------ sweeps
    def submit_sweep(self, spec: SweepSpec | Mapping[str, Any]) -> Sweep:
        """Submit a sweep; returns it with its children (ids, indexes, variations)."""
        return self._call(wapi.submit_sweep(spec))

    def get_sweep(self, sweep_id: str) -> Sweep:
        """A sweep: state derived from its children, counts, children."""
        return self._call(wapi.get_sweep(sweep_id))

    def cancel_sweep(self, sweep_id: str) -> Sweep:
        """Cancel every unfinished child of a sweep."""
        return self._call(wapi.cancel_sweep(sweep_id))

    def download_sweep(self, sweep_id: str, dest: str | Path) -> dict[int, Path]:
        """Download each child's results into ``dest/<index>/``; index → folder."""
        sweep = self.get_sweep(sweep_id)
        return {c.index: self.download(c.job_id, Path(dest) / str(c.index))
                for c in sweep.children if c.results}

    def submit_workflow(self, jobs: Mapping[str, JobSpec | Mapping[str, Any]]) -> dict[str, Job]:
        """Submit jobs that depend on each other by local name (``depends_on`` may name
        other keys of ``jobs``); returns the created jobs by name. Cycles: 422."""
        return self._call(wapi.submit_workflow(jobs))

    # ------------------------------------------------------------------ history
    def resubmit(self, job_id: str, priority: int | None = None) -> Job:
        """Submit a new job from a job's stored spec, linked to it (``resubmit_of``)."""
        return self._call(wapi.resubmit(job_id, priority))

    def history(self, since: float | None = None, until: float | None = None,
                state: str | None = None, limit: int = 50,
                cursor: str | None = None) -> dict[str, Any]:
        """Finished jobs newest first: ``{"jobs": [...], "next_cursor": ...}``."""
        return self._call(wapi.history(since, until, state, limit, cursor))

    def audit(self, **filters: Any) -> builtins.list[dict[str, Any]]:
        """Audit log entries, newest first (admins): ``who``, ``action``, ``target``..."""
        return self._call(wapi.audit(**filters))


class AsyncExtrasMixin:
    """The async twins; the class needs ``_config`` (ClientConfig) and ``_call``."""

    _config: ClientConfig

    async def _call(self, op: api.Operation[T]) -> T:
        raise NotImplementedError

    def _blob_http(self) -> httpx.Client:
        # Blob transfers stream files from and to disk: done with a sync client in a
        # worker thread, so the event loop never blocks on disk I/O.
        return httpx.Client(base_url=self._config.url, headers=self._config.headers,
                            timeout=httpx.Timeout(60.0, connect=10.0))

    async def upload_file(self, path: str | Path, sha256: str | None = None) -> str:
        """See :meth:`ExtrasMixin.upload_file`."""
        def run() -> str:
            with self._blob_http() as http:
                return files.upload_file(http, Path(path), sha256)
        return await asyncio.to_thread(run)

    async def upload_project(self, project: str | Path,
                             outputs: builtins.list[str] | None = None) -> ProjectFiles:
        """See :meth:`ExtrasMixin.upload_project`."""
        def run() -> ProjectFiles:
            with self._blob_http() as http:
                return files.upload_project(http, Path(project), outputs)
        return await asyncio.to_thread(run)

    async def download(self, job_id: str, dest: str | Path) -> Path:
        """See :meth:`ExtrasMixin.download`."""
        results = _results_of(await self._call(api.get(job_id)))

        def run() -> None:
            with self._blob_http() as http:
                files.download_results(http, results, Path(dest))
        await asyncio.to_thread(run)
        return Path(dest)

    async def submit_project(self, project: str | Path, *, staged: bool | None = None,
                             config: ConfigLike = None,
                             outputs: builtins.list[str] | None = None, **spec: Any) -> Job:
        """See :meth:`ExtrasMixin.submit_project`."""
        def run() -> JobSpec:
            with self._blob_http() as http:
                return project_spec(lambda p, o: files.upload_project(http, p, o), project,
                                    staged=staged, config=config, outputs=outputs, **spec)
        body = await asyncio.to_thread(run)
        return await self._call(api.submit(body.submit_body()))

    async def submit_sweep(self, spec: SweepSpec | Mapping[str, Any]) -> Sweep:
        """See :meth:`ExtrasMixin.submit_sweep`."""
        return await self._call(wapi.submit_sweep(spec))

    async def get_sweep(self, sweep_id: str) -> Sweep:
        """See :meth:`ExtrasMixin.get_sweep`."""
        return await self._call(wapi.get_sweep(sweep_id))

    async def cancel_sweep(self, sweep_id: str) -> Sweep:
        """See :meth:`ExtrasMixin.cancel_sweep`."""
        return await self._call(wapi.cancel_sweep(sweep_id))

    async def download_sweep(self, sweep_id: str, dest: str | Path) -> dict[int, Path]:
        """See :meth:`ExtrasMixin.download_sweep`."""
        sweep = await self.get_sweep(sweep_id)
        return {c.index: await self.download(c.job_id, Path(dest) / str(c.index))
                for c in sweep.children if c.results}

    async def submit_workflow(
        self, jobs: Mapping[str, JobSpec | Mapping[str, Any]]
    ) -> dict[str, Job]:
        """See :meth:`ExtrasMixin.submit_workflow`."""
        return await self._call(wapi.submit_workflow(jobs))

    async def resubmit(self, job_id: str, priority: int | None = None) -> Job:
        """See :meth:`ExtrasMixin.resubmit`."""
        return await self._call(wapi.resubmit(job_id, priority))

    async def history(self, since: float | None = None, until: float | None = None,
                      state: str | None = None, limit: int = 50,
                      cursor: str | None = None) -> dict[str, Any]:
        """See :meth:`ExtrasMixin.history`."""
        return await self._call(wapi.history(since, until, state, limit, cursor))

    async def audit(self, **filters: Any) -> builtins.list[dict[str, Any]]:
        """See :meth:`ExtrasMixin.audit`."""
        return await self._call(wapi.audit(**filters))

"""Files, sweeps, dependencies, resubmit, history and audit in the sync façade.

:class:`WorkflowMixin` adds these methods to :class:`~simfarm.client.client.Client`;
it needs only the client's ``_http`` (an ``httpx.Client``) and ``_request``.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from simfarm.client import files
from simfarm.client.errors import ApiError
from simfarm.common.files import ProjectFiles
from simfarm.common.hfss import HFSSSimulationConfig
from simfarm.common.models import Job, JobSpec
from simfarm.common.settings import Settings
from simfarm.common.sweeps import Sweep, SweepSpec


class WorkflowMixin:
    """Methods shared by the sync client for project files, sweeps and history."""

    _http: httpx.Client

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError

    # ------------------------------------------------------------------ files
    def upload_file(self, path: str | Path, sha256: str | None = None) -> str:
        """Upload a file as a blob (skipped if the gateway has it); returns its SHA-256."""
        return files.upload_file(self._http, Path(path), sha256)

    def upload_project(self, project: str | Path, outputs: builtins.list[str] | None = None,
                       ) -> ProjectFiles:
        """Pack and upload a ``.aedt``/``.aedb`` project; returns the ``files`` section of
        a staged job (``JobSpec(files=...)``)."""
        return files.upload_project(self._http, Path(project), outputs)

    def download(self, job_id: str, dest: str | Path) -> Path:
        """Download a staged job's results into folder ``dest`` (created if needed);
        returns ``dest``. Raises :class:`ApiError` 404 when the job has no results."""
        job = Job.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}").json())
        if job.results is None:
            raise ApiError(404, "not_found", f"job {job_id} has no results (yet)")
        files.download_results(self._http, job.results, Path(dest))
        return Path(dest)

    def submit_project(
        self,
        project: str | Path,
        *,
        staged: bool | None = None,
        config: HFSSSimulationConfig | Mapping[str, Any] | None = None,
        outputs: builtins.list[str] | None = None,
        **spec: Any,
    ) -> Job:
        """Submit an HFSS job for a project. ``staged`` uploads it first (default: the
        ``file_mode`` setting); otherwise its path must be valid on the shared storage."""
        spec_obj = project_spec(self, project, staged=staged, config=config, outputs=outputs,
                                **spec)
        return Job.model_validate(
            self._request("POST", "/api/v1/jobs", json=spec_obj.model_dump(mode="json")).json()
        )

    # ------------------------------------------------------------------ sweeps
    def submit_sweep(self, spec: SweepSpec | Mapping[str, Any]) -> Sweep:
        """Submit a sweep; returns it with its children (ids and indexes)."""
        body = spec.model_dump(mode="json", exclude_none=True) if isinstance(spec, SweepSpec) \
            else dict(spec)
        return Sweep.model_validate(self._request("POST", "/api/v1/sweeps", json=body).json())

    def get_sweep(self, sweep_id: str) -> Sweep:
        """A sweep with its state derived from its children and their list."""
        return Sweep.model_validate(self._request("GET", f"/api/v1/sweeps/{sweep_id}").json())

    def cancel_sweep(self, sweep_id: str) -> Sweep:
        """Cancel a sweep: every child not finished yet is cancelled."""
        return Sweep.model_validate(
            self._request("POST", f"/api/v1/sweeps/{sweep_id}/cancel").json())

    def download_sweep(self, sweep_id: str, dest: str | Path) -> dict[int, Path]:
        """Download every child's results into ``dest/<index>/``; returns index → folder
        for the children that have results."""
        sweep = self.get_sweep(sweep_id)
        out: dict[int, Path] = {}
        for child in sweep.children:
            if child.results:
                folder = Path(dest) / str(child.index)
                out[child.index] = self.download(child.job_id, folder)
        return out

    # ------------------------------------------------------------------ history
    def resubmit(self, job_id: str, priority: int | None = None) -> Job:
        """Submit a new job from a job's stored spec, linked to it (``resubmit_of``)."""
        body = {} if priority is None else {"priority": priority}
        return Job.model_validate(
            self._request("POST", f"/api/v1/jobs/{job_id}/resubmit", json=body).json())

    def history(self, since: float | None = None, until: float | None = None, limit: int = 50,
                cursor: str | None = None) -> dict[str, Any]:
        """Finished jobs, newest first (``jobs`` and ``next_cursor``)."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("since", since), ("until", until), ("cursor", cursor)):
            if value is not None:
                params[name] = value
        body: dict[str, Any] = self._request("GET", "/api/v1/history", params=params).json()
        return body

    def audit(self, **query: Any) -> builtins.list[dict[str, Any]]:
        """Audit log entries (admins): filters ``who``, ``action``, ``target``, ``since``."""
        body = self._request("GET", "/api/v1/audit", params=query).json()
        return list(body["entries"])


def project_spec(
    client: WorkflowMixin,
    project: str | Path,
    *,
    staged: bool | None = None,
    config: HFSSSimulationConfig | Mapping[str, Any] | None = None,
    outputs: builtins.list[str] | None = None,
    **spec: Any,
) -> JobSpec:
    """The job spec of an HFSS run of ``project`` (uploading it when staged)."""
    if staged is None:
        staged = Settings().file_mode == "staged"
    hfss = dict(config.model_dump(mode="json") if isinstance(config, HFSSSimulationConfig)
                else (config or {}))
    if staged:
        uploaded = client.upload_project(project, outputs)
        hfss["project_path"] = Path(project).name
        spec["files"] = uploaded.model_dump(mode="json")
    else:
        hfss["project_path"] = str(project)
    return JobSpec.model_validate({"kind": "hfss", "hfss": hfss, **spec})

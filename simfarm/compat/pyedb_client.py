"""PyEDB's REST routes (``/jobs/submit``, ``/api/jobs``, ``/pool/limits``) for the
compatibility layer, on simfarm's own client.

The routes are I/O-free operations like those of :mod:`simfarm.client.api`;
:class:`PyEDBClient` and :class:`AsyncPyEDBClient` are :class:`~simfarm.Client` and
:class:`~simfarm.AsyncClient` that can also send them, so the façade, ``submit_local_job``
and ``submit_batch_jobs`` share the client's URL and token discovery, transport and
typed errors (an :class:`~simfarm.ApiError` carries the route's status and message).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simfarm.client.api import Operation, Request
from simfarm.client.async_client import AsyncClient
from simfarm.client.client import Client
from simfarm.client.errors import ApiError
from simfarm.common.hfss import HFSSSimulationConfig, MachineNode, create_hfss_config


class JobSubmissionError(RuntimeError):
    """The service refused a job (the message says why)."""


def project_config(project: Path, cores: int) -> HFSSSimulationConfig:
    """The config ``submit_local_job``/``submit_batch_jobs`` send: ``project`` on
    ``cores`` cores of one machine."""
    config = create_hfss_config(project_path=str(project))
    if not config.machine_nodes:
        config.machine_nodes.append(MachineNode())
    config.machine_nodes[0].cores = cores
    config.machine_nodes[0].max_cores = cores
    return config


def submit_body(config: HFSSSimulationConfig, priority: int = 0, version: str | None = None,
                default_path: str | None = None) -> dict[str, Any]:
    """The body of ``POST /jobs/submit``. A relative project path that exists here is
    made absolute (the node needs a full path); ``ansys_edt_path`` is kept when it is
    not ``default_path`` (the one found on this machine): the user named it."""
    data = config.to_dict()
    project = Path(config.project_path)
    if not project.is_absolute() and project.exists():
        data["project_path"] = str(project.resolve())
    body: dict[str, Any] = {"config": data, "priority": priority}
    if version:
        body["aedt_version"] = version
    if config.ansys_edt_path and config.ansys_edt_path != default_path:
        body["use_config_ansys_edt_path"] = True
    return body


def _job_id(body: Any) -> str:
    if not isinstance(body, dict) or not body.get("success"):
        error = body.get("error") if isinstance(body, dict) else body
        raise JobSubmissionError(f"Job submission failed: {error or body}")
    return str(body["job_id"])


def submit(body: Mapping[str, Any], timeout: float | None = None) -> Operation[str]:
    """``POST /jobs/submit``: the job id."""
    return Operation(Request("POST", "/jobs/submit", json=dict(body), timeout=timeout), _job_id)


def jobs() -> Operation[list[dict[str, Any]]]:
    """``GET /api/jobs``: the caller's HFSS jobs in PyEDB's shape, newest first."""
    return Operation(Request("GET", "/api/jobs"), list)


def scheduler_type() -> Operation[str]:
    """``GET /api/scheduler_type``: the scheduler a worker of the farm is attached to, else
    ``none``."""
    return Operation(Request("GET", "/api/scheduler_type"),
                     lambda body: str(body.get("scheduler_type") or "none"))


def pool_limits(changes: Mapping[str, Any]) -> Operation[dict[str, Any]]:
    """``PUT /pool/limits``: the limits as the farm's nodes now apply them."""
    return Operation(Request("PUT", "/pool/limits", json=dict(changes)),
                     lambda body: dict(body.get("limits", {})))


class PyEDBClient(Client):
    """:class:`~simfarm.Client` with PyEDB's routes."""

    def submit_config(self, body: Mapping[str, Any], timeout: float | None = None) -> str:
        """Queue a job (``body`` from :func:`submit_body`); its id. A refusal raises
        :class:`~simfarm.ApiError` (its ``detail`` is PyEDB's ``error``)."""
        return self._call(submit(body, timeout))

    def pyedb_jobs(self) -> builtins.list[dict[str, Any]]:
        """Every HFSS job the caller may see, in PyEDB's shape."""
        return self._call(jobs())

    def scheduler_type(self) -> str:
        """The cluster scheduler the farm can forward to (``none`` without one)."""
        return self._call(scheduler_type())

    def set_pool_limits(self, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        """Change the pool limits; the new limits, or None when refused."""
        try:
            return self._call(pool_limits(changes))
        except ApiError:
            return None


class AsyncPyEDBClient(AsyncClient):
    """:class:`~simfarm.AsyncClient` with PyEDB's routes (see :class:`PyEDBClient`)."""

    async def submit_config(self, body: Mapping[str, Any], timeout: float | None = None) -> str:
        """See :meth:`PyEDBClient.submit_config`."""
        return await self._call(submit(body, timeout))

    async def pyedb_jobs(self) -> builtins.list[dict[str, Any]]:
        """See :meth:`PyEDBClient.pyedb_jobs`."""
        return await self._call(jobs())

    async def scheduler_type(self) -> str:
        """See :meth:`PyEDBClient.scheduler_type`."""
        return await self._call(scheduler_type())

    async def set_pool_limits(self, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        """See :meth:`PyEDBClient.set_pool_limits`."""
        try:
            return await self._call(pool_limits(changes))
        except ApiError:
            return None

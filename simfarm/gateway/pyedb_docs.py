"""OpenAPI metadata of the PyEDB-compatible routes (:mod:`simfarm.gateway.pyedb_routes`).

Kept beside, not inside, the routes module so PyEDB's JSON shapes are described in one
place; the models below mirror the dicts that module returns.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from simfarm.common.hfss import HFSS3DLayoutBatchOptions, HFSSSimulationConfig, MachineNode
from simfarm.gateway import pyedb_routes as r
from simfarm.gateway.openapi import Body, document

TAG = ["pyedb"]
_JOB = {"job_id": "the job's id (PyEDB's `jobid`)"}


class PyedbError(BaseModel):
    """PyEDB's failure body, with simfarm's ``detail`` and ``fields`` added."""

    success: bool = False
    error: str
    detail: str
    fields: list[dict[str, str]] = Field(default_factory=list)


class PyedbConfigOut(HFSSSimulationConfig):
    """``HFSSSimulationConfig.to_dict()``: the configuration with PyEDB's metadata."""

    platform: str = Field(default="", description="the gateway's operating system")
    timestamp: str = Field(default="", description="when the dict was made (ISO 8601)")
    version: str = Field(default="", description="PyEDB's config format version")


class PyedbJob(BaseModel):
    """A job as PyEDB's ``/jobs`` lists it."""

    id: str
    user: str
    config: PyedbConfigOut = Field(description="`HFSSSimulationConfig.to_dict()`")
    status: str = Field(description="pending, scheduled, running, completed, failed, cancelled")
    start_time: str | None
    end_time: str | None
    return_code: int | None
    scheduler_job_id: str | None
    priority: int = Field(description="PyEDB's priority scale")
    error: str | None
    progress: dict[str, Any] | None


class PyedbUsage(BaseModel):
    """PyEDB's resource snapshot, summed over the farm's live nodes."""

    cpu_percent: float
    memory_percent: float
    memory_used_gb: float
    memory_total_gb: float
    memory_free_gb: float
    disk_usage_percent: float
    disk_free_gb: float
    timestamp: str
    nodes: int


class PyedbQueue(BaseModel):
    """PyEDB's queue statistics."""

    total_queued: int
    regular_queue_size: int
    priority_queues: dict[str, int]
    running_jobs: int
    max_concurrent: int


class PyedbSubmit(BaseModel):
    """Body of PyEDB's submit routes."""

    config: HFSSSimulationConfig = Field(description="PyEDB's `HFSSSimulationConfig.to_dict()`")
    priority: int = 0
    user: str | None = None
    aedt_version: str | None = Field(default=None, description="e.g. `2025.2`")
    use_config_ansys_edt_path: bool = False
    machine_nodes: list[MachineNode] | None = None
    batch_options: HFSS3DLayoutBatchOptions | None = None


class PyedbSubmitted(BaseModel):
    """Answer of a successful submit."""

    success: bool
    job_id: str
    status: str
    message: str


class PyedbResult(BaseModel):
    """``{success, message}`` answers."""

    success: bool
    message: str


class PyedbCancelResult(BaseModel):
    """Handler-style cancel answer."""

    status: str
    success: bool


class PyedbPriority(BaseModel):
    """Body of the priority route."""

    priority: int = 0


_ERR = Body(PyedbError, "error (PyEDB shape)")
_OBJ = dict[str, Any]

document(tags=TAG, responses={200: list[PyedbJob]})(r.list_jobs)
document(tags=TAG, responses={200: PyedbUsage})(r.resources)
document(tags=TAG, responses={200: PyedbQueue})(r.queue)
document(tags=TAG, responses={200: Body(_OBJ, "PyEDB's JobManager status")})(r.system_status)
document(tags=TAG, responses={200: PyedbResult})(r.start_monitoring)
document(tags=TAG, responses={200: dict[str, str]})(r.scheduler_type)
document(tags=TAG, responses={200: list[_OBJ]})(r.cluster_partitions)
document(tags=TAG, responses={200: list[_OBJ], 400: _ERR})(r.scheduler_partitions)
document(tags=TAG, responses={200: dict[str, str]})(r.me)
document(
    tags=TAG,
    path_params=_JOB,
    responses={200: Body(_OBJ, "parsed solver log"), 204: "nothing parsed yet", 404: _ERR},
)(r.job_log)
document(
    tags=TAG,
    body=PyedbSubmit,
    responses={200: PyedbSubmitted, 400: _ERR, 409: _ERR, 422: _ERR, 429: _ERR},
)(r.submit)
document(tags=TAG, path_params=_JOB, responses={200: PyedbResult, 404: _ERR})(r.cancel)
document(tags=TAG, path_params=_JOB, responses={200: PyedbCancelResult, 404: _ERR})(
    r.cancel_api
)
document(
    tags=TAG,
    path_params=_JOB,
    body=PyedbPriority,
    responses={200: PyedbResult, 404: _ERR, 409: _ERR, 422: _ERR},
)(r.set_priority)

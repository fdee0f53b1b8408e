"""The REST calls of a farm shared by a team — accounts, node drains, holds, usage and
fair share — as I/O-free operations shared by :class:`~simfarm.client.client.Client`
and :class:`~simfarm.client.async_client.AsyncClient` (see :mod:`simfarm.client.api`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from simfarm.client.api import Operation, Request
from simfarm.common.models import Job, NodeInfo


def _node_path(node: str, action: str) -> str:
    return f"/api/v1/workers/{quote(node, safe='')}/{action}"


def accounts() -> Operation[dict[str, Any]]:
    """GET the accounts (``accounts``, ``default_account``)."""
    return Operation(Request("GET", "/api/v1/accounts"), dict)


def fairshare() -> Operation[dict[str, Any]]:
    """GET every account's and user's fair-share standing (``accounts``, ``users``)."""
    return Operation(Request("GET", "/api/v1/fairshare"), dict)


def drain(node: str, reason: str = "") -> Operation[NodeInfo]:
    """Drain a node: it takes no new jobs; those it runs finish."""
    return Operation(Request("POST", _node_path(node, "drain"), json={"reason": reason}),
                     NodeInfo.model_validate)


def resume(node: str) -> Operation[NodeInfo]:
    """Resume a drained node."""
    return Operation(Request("POST", _node_path(node, "resume")), NodeInfo.model_validate)


def _job_path(job_id: str, action: str) -> str:
    return f"/api/v1/jobs/{quote(job_id, safe='')}/{action}"


def _sweep_path(sweep_id: str, action: str) -> str:
    return f"/api/v1/sweeps/{quote(sweep_id, safe='')}/{action}"


def hold(job_id: str, reason: str = "") -> Operation[Job]:
    """Hold a pending job (state ``held``): never dispatched until released."""
    return Operation(Request("POST", _job_path(job_id, "hold"), json={"reason": reason}),
                     Job.model_validate)


def release(job_id: str) -> Operation[Job]:
    """Release a held job: pending again at the place in line it had."""
    return Operation(Request("POST", _job_path(job_id, "release")), Job.model_validate)


def hold_sweep(sweep_id: str, reason: str = "") -> Operation[dict[str, Any]]:
    """Hold every pending child of a sweep (``changed``, ``held``)."""
    return Operation(Request("POST", _sweep_path(sweep_id, "hold"), json={"reason": reason}),
                     dict)


def release_sweep(sweep_id: str) -> Operation[dict[str, Any]]:
    """Release every held child of a sweep (``changed``, ``held``)."""
    return Operation(Request("POST", _sweep_path(sweep_id, "release")), dict)

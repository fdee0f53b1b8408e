"""What both façades add for a farm shared by a team: accounts, node drains, holds,
usage and fair share. :class:`TeamMixin` adds them to
:class:`~simfarm.client.client.Client`, :class:`AsyncTeamMixin` to
:class:`~simfarm.client.async_client.AsyncClient`; the REST calls are the shared
operations of :mod:`simfarm.client.team_api`."""

from __future__ import annotations

from typing import Any, TypeVar

from simfarm.client import api
from simfarm.client import team_api as tapi
from simfarm.common.models import Job, NodeInfo

T = TypeVar("T")


class TeamMixin:
    """Sync methods; the class needs ``_call``."""

    def _call(self, op: api.Operation[T]) -> T:
        raise NotImplementedError

    def accounts(self) -> dict[str, Any]:
        """The farm's accounts: ``accounts`` (shares, members, ``mine``, ``default``) and
        the caller's ``default_account``."""
        return self._call(tapi.accounts())

    def fairshare(self) -> dict[str, Any]:
        """Where each account and user stands against its share: ``accounts`` and
        ``users``, each with ``share``, decayed ``usage_core_s``, ``used`` and ``factor``
        (``GET /api/v1/fairshare``)."""
        return self._call(tapi.fairshare())

    def drain(self, node: str, reason: str = "") -> NodeInfo:
        """Drain a node (admins): no new jobs start there; running ones finish."""
        return self._call(tapi.drain(node, reason))

    def resume(self, node: str) -> NodeInfo:
        """Resume a drained node (admins)."""
        return self._call(tapi.resume(node))

    def hold(self, job_id: str, reason: str = "") -> Job:
        """Hold a pending job: never dispatched until released; it keeps its place."""
        return self._call(tapi.hold(job_id, reason))

    def release(self, job_id: str) -> Job:
        """Release a held job: pending again, where it was in line."""
        return self._call(tapi.release(job_id))

    def hold_sweep(self, sweep_id: str, reason: str = "") -> dict[str, Any]:
        """Hold every pending child of a sweep; ``{"changed", "held"}``."""
        return self._call(tapi.hold_sweep(sweep_id, reason))

    def release_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Release every held child of a sweep; ``{"changed", "held"}``."""
        return self._call(tapi.release_sweep(sweep_id))


class AsyncTeamMixin:
    """The async twins; the class needs ``_call``."""

    async def _call(self, op: api.Operation[T]) -> T:
        raise NotImplementedError

    async def accounts(self) -> dict[str, Any]:
        """See :meth:`TeamMixin.accounts`."""
        return await self._call(tapi.accounts())

    async def fairshare(self) -> dict[str, Any]:
        """See :meth:`TeamMixin.fairshare`."""
        return await self._call(tapi.fairshare())

    async def drain(self, node: str, reason: str = "") -> NodeInfo:
        """See :meth:`TeamMixin.drain`."""
        return await self._call(tapi.drain(node, reason))

    async def resume(self, node: str) -> NodeInfo:
        """See :meth:`TeamMixin.resume`."""
        return await self._call(tapi.resume(node))

    async def hold(self, job_id: str, reason: str = "") -> Job:
        """See :meth:`TeamMixin.hold`."""
        return await self._call(tapi.hold(job_id, reason))

    async def release(self, job_id: str) -> Job:
        """See :meth:`TeamMixin.release`."""
        return await self._call(tapi.release(job_id))

    async def hold_sweep(self, sweep_id: str, reason: str = "") -> dict[str, Any]:
        """See :meth:`TeamMixin.hold_sweep`."""
        return await self._call(tapi.hold_sweep(sweep_id, reason))

    async def release_sweep(self, sweep_id: str) -> dict[str, Any]:
        """See :meth:`TeamMixin.release_sweep`."""
        return await self._call(tapi.release_sweep(sweep_id))

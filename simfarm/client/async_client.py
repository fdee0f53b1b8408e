"""The asyncio Python façade: :class:`AsyncClient`, the twin of
:class:`~simfarm.client.client.Client` (same methods, as coroutines)."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Self, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simfarm.client import api, flows
from simfarm.client.base import ClientConfig, ws_error
from simfarm.client.errors import ConnectionFailed
from simfarm.client.extras import AsyncExtrasMixin
from simfarm.client.progress import wait_progress
from simfarm.client.specs import SpecLike, job_body
from simfarm.client.team import AsyncTeamMixin
from simfarm.client.usage import AsyncUsageMixin
from simfarm.common.convergence import Convergence
from simfarm.common.job_html import JobList
from simfarm.common.license_pools import LicenseStatus
from simfarm.common.models import Job, JobEvent, JobPage, NodeInfo
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.ws_protocol import EventType, Subscribe, parse_server_message

T = TypeVar("T")
PARALLEL_CALLS = 16


class AsyncClient(AsyncExtrasMixin, AsyncTeamMixin, AsyncUsageMixin):
    """Talks to a simfarm gateway from asyncio; use ``async with AsyncClient() as c``.

    Arguments as for :class:`~simfarm.client.client.Client`. With ``embedded=True`` the
    private farm is started when the client is created (a blocking call of a few
    seconds: create the client before heavy async work begins).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        embedded: bool = False,
        timeout: float = 30.0,
        *,
        settings: Settings | None = None,
    ) -> None:
        self._config = ClientConfig(url, token, embedded, timeout, settings)
        self.url = self._config.url
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self._config.headers, timeout=timeout
        )

    # ------------------------------------------------------------------ lifecycle
    async def close(self) -> None:
        """Close the connections and stop the embedded service, if any."""
        await self._http.aclose()
        await asyncio.to_thread(self._config.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ jobs
    async def submit(
        self,
        spec_or_config: SpecLike,
        priority: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a job (see :meth:`Client.submit`)."""
        return await self._call(api.submit(job_body(spec_or_config, priority), idempotency_key))

    async def get(self, job_id: str) -> Job:
        """The job's current state."""
        return await self._call(api.get(job_id))

    async def get_jobs(self, job_ids: Iterable[str]) -> builtins.list[Job]:
        """Many jobs by id, in the order given, in one request per 1000 ids
        (``POST /api/v1/jobs/query``); :class:`~simfarm.client.errors.NotFound` if one
        of them is no job of yours."""
        return await _Runner(self).run(flows.read_jobs(builtins.list(job_ids)))

    async def list(
        self, state: JobState | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """One page of jobs: newest first, or queue order with ``state``."""
        return await self._call(api.list_jobs(state, limit, cursor))

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job."""
        return await self._call(api.cancel(job_id))

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """Change the priority (0-10) of a pending job."""
        return await self._call(api.set_priority(job_id, priority))

    async def events(
        self, job_id: str, since: str | None = None, wait: float = 0
    ) -> builtins.list[JobEvent]:
        """The job's events after ``since``; with ``wait`` long-polls for new ones."""
        return await self._call(api.events(job_id, since, wait))

    async def convergence(self, job_id: str) -> Convergence:
        """An HFSS job's convergence so far (see :meth:`Client.convergence`)."""
        return await self._call(api.progress(job_id))

    async def plot_convergence(self, job_id: str) -> Any:
        """The job's convergence as a matplotlib figure (see :meth:`Client.plot_convergence`)."""
        from simfarm.client.notebook import plot_convergence

        return plot_convergence(await self.convergence(job_id))

    def logs(self, job_id: str, follow: bool = False) -> AsyncIterator[str]:
        """The job's output lines (``async for``); with ``follow`` until the job ends."""
        return _Runner(self).iterate(flows.logs_flow(job_id, follow))

    def stream(
        self,
        jobs: Sequence[str] | None = None,
        states: Iterable[JobState | str] | None = None,
        types: Iterable[EventType] | None = None,
        since: str | None = None,
    ) -> AsyncIterator[JobEvent]:
        """Live events over the WebSocket (``async for``), resuming after disconnects."""
        return _Runner(self).iterate(
            flows.stream_flow(flows.subscription(jobs, states, types, since)))

    async def wait(
        self, job_id: str, timeout: float | None = None, raise_on_failure: bool = False,
        *, progress: bool = False,
    ) -> Job:
        """Wait until the job is final (see :meth:`Client.wait`)."""
        return (await self.wait_all([job_id], timeout, raise_on_failure,
                                    progress=progress))[0]

    async def wait_all(
        self,
        job_ids: Iterable[str],
        timeout: float | None = None,
        raise_on_failure: bool = False,
        *,
        progress: bool = False,
    ) -> JobList:
        """Wait until every job is final, following them all on one WebSocket (no task
        per job); the jobs in the order given (see :meth:`Client.wait_all`)."""
        ids = builtins.list(job_ids)
        with wait_progress(progress, ids) as on_change:
            return JobList(await _Runner(self).run(
                flows.wait_flow(ids, timeout, raise_on_failure, on_change=on_change)))

    # ------------------------------------------------------------------ farm
    async def workers(self) -> builtins.list[NodeInfo]:
        """The registered worker nodes."""
        return await self._call(api.workers())

    async def licenses(self) -> builtins.list[LicenseStatus]:
        """The farm's floating licence pools: limit, held, outside, free, waiting, last
        poll of the server and any warning (docs/licences.md)."""
        return await self._call(api.licenses())

    async def limits(self, node: str) -> dict[str, Any]:
        """A node's local limits."""
        return await self._call(api.limits(node))

    async def set_limits(self, node: str, **changes: Any) -> dict[str, Any]:
        """Change some of a node's local limits; returns all of them."""
        return await self._call(api.set_limits(node, changes))

    async def health(self) -> dict[str, Any]:
        """The gateway's health."""
        return await self._call(api.health())

    # ------------------------------------------------------------------ transport
    async def _call(self, op: api.Operation[T]) -> T:
        try:
            response = await self._http.request(**op.request.httpx_kwargs())
        except httpx.TransportError as exc:
            raise ConnectionFailed(self._config.connection_error(exc)) from exc
        return op.read(response)


class _Runner:
    """Runs one flow on asyncio; owns at most one WebSocket connection."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.ws: ClientConnection | None = None

    async def run(self, flow: flows.Flow[T]) -> T:
        """Run a flow that emits nothing; its return value."""
        steps = flows.Steps(flow)
        try:
            for action in steps:
                await self._answer(steps, action)
            return steps.value
        finally:
            steps.close()
            await self._close_ws()

    async def iterate(self, flow: flows.Flow[None]) -> AsyncIterator[Any]:
        """Run a flow, yielding what it emits."""
        steps = flows.Steps(flow)
        try:
            for action in steps:
                if isinstance(action, flows.Emit):
                    yield action.value
                else:
                    await self._answer(steps, action)
        finally:
            steps.close()
            await self._close_ws()

    async def _answer(self, steps: flows.Steps[Any], action: flows.Action) -> None:
        try:
            steps.answer(await self._perform(action))
        except Exception as exc:
            steps.fail(exc)

    async def _perform(self, action: flows.Action) -> Any:
        if isinstance(action, flows.Call):
            return await self.client._call(action.op)
        if isinstance(action, flows.CallMany):
            limit = asyncio.Semaphore(PARALLEL_CALLS)

            async def one(op: api.Operation[Any]) -> Any:
                async with limit:
                    return await self.client._call(op)

            return builtins.list(await asyncio.gather(*(one(op) for op in action.ops)))
        if isinstance(action, flows.Open):
            return await self._open(action.subscribe)
        if isinstance(action, flows.Receive):
            return await self._receive(action.timeout)
        if isinstance(action, flows.Pause):
            await asyncio.sleep(action.seconds)
            return None
        raise TypeError(f"unknown action {action!r}")

    async def _open(self, subscription: Subscribe) -> None:
        await self._close_ws()
        config = self.client._config
        try:
            self.ws = await connect(
                config.ws_url,
                additional_headers=config.headers,
                open_timeout=config.timeout,
                max_size=None,
            )
            await self.ws.send(subscription.model_dump_json(exclude_none=True))
        except (InvalidHandshake, ConnectionClosed, OSError) as exc:
            raise ws_error(exc) from exc

    async def _receive(self, timeout: float) -> Any:
        assert self.ws is not None
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            return None
        except (ConnectionClosed, OSError) as exc:
            raise ws_error(exc) from exc
        return parse_server_message(raw)

    async def _close_ws(self) -> None:
        if self.ws is not None:
            ws, self.ws = self.ws, None
            await ws.close()

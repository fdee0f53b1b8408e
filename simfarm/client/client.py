"""The synchronous Python façade: :class:`Client`."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Self, TypeVar

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from simfarm.client import api, flows
from simfarm.client.base import ClientConfig, ws_error
from simfarm.client.errors import ConnectionFailed
from simfarm.client.extras import ExtrasMixin
from simfarm.client.progress import wait_progress
from simfarm.client.specs import SpecLike, job_body
from simfarm.client.team import TeamMixin
from simfarm.client.usage import UsageMixin
from simfarm.common.convergence import Convergence
from simfarm.common.job_html import JobList
from simfarm.common.license_pools import LicenseStatus
from simfarm.common.models import Job, JobEvent, JobPage, NodeInfo
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.ws_protocol import EventType, Subscribe, parse_server_message

T = TypeVar("T")
PARALLEL_CALLS = 8


class Client(ExtrasMixin, TeamMixin, UsageMixin):
    """Talks to a simfarm gateway over HTTP and WebSocket. Safe to share between threads.

    ``url`` defaults to ``SIMFARM_URL``, then to a running ``simfarm up``, then to
    ``http://127.0.0.1:8765``; ``token`` to ``SIMFARM_TOKEN``. With ``embedded=True`` the
    client starts a private farm (redis-server, gateway, one worker) and stops it at
    :meth:`close` or interpreter exit.
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
        self._http = httpx.Client(base_url=self.url, headers=self._config.headers, timeout=timeout)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connections and stop the embedded service, if any."""
        self._http.close()
        self._config.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ jobs
    def submit(
        self,
        spec_or_config: SpecLike,
        priority: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a job: a :class:`~simfarm.common.models.JobSpec`, an
        :class:`~simfarm.common.hfss.HFSSSimulationConfig`, a dict or an argv list.
        ``priority`` 0-10 (default: the spec's, 5). Returns the job as stored."""
        return self._call(api.submit(job_body(spec_or_config, priority), idempotency_key))

    def get(self, job_id: str) -> Job:
        """The job's current state (:class:`~simfarm.client.errors.NotFound` if unknown)."""
        return self._call(api.get(job_id))

    def get_jobs(self, job_ids: Iterable[str]) -> builtins.list[Job]:
        """Many jobs by id, in the order given, in one request per 1000 ids
        (``POST /api/v1/jobs/query``); :class:`~simfarm.client.errors.NotFound` if one
        of them is no job of yours."""
        return _Runner(self).run(flows.read_jobs(builtins.list(job_ids)))

    def list(
        self, state: JobState | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """One page of jobs: newest first, or queue order with ``state``."""
        return self._call(api.list_jobs(state, limit, cursor))

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (a running one is stopped by its worker shortly after)."""
        return self._call(api.cancel(job_id))

    def set_priority(self, job_id: str, priority: int) -> Job:
        """Change the priority (0-10) of a pending job."""
        return self._call(api.set_priority(job_id, priority))

    def events(
        self, job_id: str, since: str | None = None, wait: float = 0
    ) -> builtins.list[JobEvent]:
        """The job's events after ``since``; with ``wait`` long-polls for new ones."""
        return self._call(api.events(job_id, since, wait))

    def convergence(self, job_id: str) -> Convergence:
        """An HFSS job's convergence so far: Max Mag. Delta S per adaptive pass, the
        setup's target and maximum passes, the sweep (``GET .../progress``)."""
        return self._call(api.progress(job_id))

    def plot_convergence(self, job_id: str) -> Any:
        """The job's convergence as a matplotlib figure (shown inline in Jupyter; needs
        ``pip install 'simfarm[notebook]'``)."""
        from simfarm.client.notebook import plot_convergence

        return plot_convergence(self.convergence(job_id))

    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The job's output lines; with ``follow`` keeps going until the job ends."""
        return _Runner(self).iterate(flows.logs_flow(job_id, follow))

    def stream(
        self,
        jobs: Sequence[str] | None = None,
        states: Iterable[JobState | str] | None = None,
        types: Iterable[EventType] | None = None,
        since: str | None = None,
    ) -> Iterator[JobEvent]:
        """Live events over the WebSocket, forever (break out of the loop to stop).
        Reconnects and resumes by itself, losing and repeating nothing."""
        return _Runner(self).iterate(
            flows.stream_flow(flows.subscription(jobs, states, types, since)))

    def wait(
        self, job_id: str, timeout: float | None = None, raise_on_failure: bool = False,
        *, progress: bool = False,
    ) -> Job:
        """Block until the job is final and return it. Raises
        :class:`~simfarm.client.errors.WaitTimeout` (a ``TimeoutError``) after
        ``timeout`` seconds; with ``raise_on_failure``, :class:`JobFailed` or
        :class:`JobCancelled` when it did not complete. ``progress`` shows a bar."""
        return self.wait_all([job_id], timeout, raise_on_failure, progress=progress)[0]

    def wait_all(
        self,
        job_ids: Iterable[str],
        timeout: float | None = None,
        raise_on_failure: bool = False,
        *,
        progress: bool = False,
    ) -> JobList:
        """Block until every job is final; the jobs in the order given (a list that
        Jupyter shows as a table). One WebSocket follows all of them (polling if the
        gateway has none). With ``raise_on_failure`` the first failed or cancelled job
        raises at once. ``progress`` shows a tqdm bar (a widget in Jupyter) with the
        jobs' states counted."""
        ids = list(job_ids)
        with wait_progress(progress, ids) as on_change:
            return JobList(_Runner(self).run(
                flows.wait_flow(ids, timeout, raise_on_failure, on_change=on_change)))

    # ------------------------------------------------------------------ farm
    def workers(self) -> builtins.list[NodeInfo]:
        """The registered worker nodes with their free resources and jobs."""
        return self._call(api.workers())

    def licenses(self) -> builtins.list[LicenseStatus]:
        """The farm's floating licence pools: limit, held, outside, free, waiting, last
        poll of the server and any warning (docs/licences.md)."""
        return self._call(api.licenses())

    def limits(self, node: str) -> dict[str, Any]:
        """A node's local limits (max jobs, CPU %, memory %, free disk)."""
        return self._call(api.limits(node))

    def set_limits(self, node: str, **changes: Any) -> dict[str, Any]:
        """Change some of a node's local limits at run time; returns all of them."""
        return self._call(api.set_limits(node, changes))

    def health(self) -> dict[str, Any]:
        """The gateway's health: Redis, live nodes, jobs per state."""
        return self._call(api.health())

    # ------------------------------------------------------------------ transport
    def _call(self, op: api.Operation[T]) -> T:
        try:
            response = self._http.request(**op.request.httpx_kwargs())
        except httpx.TransportError as exc:
            raise ConnectionFailed(self._config.connection_error(exc)) from exc
        return op.read(response)


class _Runner:
    """Runs one flow with blocking I/O; owns at most one WebSocket connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws: ClientConnection | None = None
        self._ws_stack = ExitStack()

    def run(self, flow: flows.Flow[T]) -> T:
        """Run a flow that emits nothing; its return value."""
        steps = flows.Steps(flow)
        try:
            for action in steps:
                self._answer(steps, action)
            return steps.value
        finally:
            steps.close()
            self._close_ws()

    def iterate(self, flow: flows.Flow[None]) -> Iterator[Any]:
        """Run a flow, yielding what it emits."""
        steps = flows.Steps(flow)
        try:
            for action in steps:
                if isinstance(action, flows.Emit):
                    yield action.value
                else:
                    self._answer(steps, action)
        finally:
            steps.close()
            self._close_ws()

    def _answer(self, steps: flows.Steps[Any], action: flows.Action) -> None:
        try:
            steps.answer(self._perform(action))
        except Exception as exc:
            steps.fail(exc)

    def _perform(self, action: flows.Action) -> Any:
        if isinstance(action, flows.Call):
            return self.client._call(action.op)
        if isinstance(action, flows.CallMany):
            if len(action.ops) <= 1:
                return [self.client._call(op) for op in action.ops]
            with ThreadPoolExecutor(min(PARALLEL_CALLS, len(action.ops))) as pool:
                return list(pool.map(self.client._call, action.ops))
        if isinstance(action, flows.Open):
            return self._open(action.subscribe)
        if isinstance(action, flows.Receive):
            return self._receive(action.timeout)
        if isinstance(action, flows.Pause):
            time.sleep(action.seconds)
            return None
        raise TypeError(f"unknown action {action!r}")

    def _open(self, subscription: Subscribe) -> None:
        self._close_ws()
        config = self.client._config
        try:
            # entered as a context manager: websockets >= 17 warns about bare connect()
            self.ws = self._ws_stack.enter_context(
                connect(
                    config.ws_url,
                    additional_headers=config.headers,
                    open_timeout=config.timeout,
                    max_size=None,
                )
            )
            self.ws.send(subscription.model_dump_json(exclude_none=True))
        except (InvalidHandshake, ConnectionClosed, OSError) as exc:
            raise ws_error(exc) from exc

    def _receive(self, timeout: float) -> Any:
        assert self.ws is not None
        try:
            raw = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except (ConnectionClosed, OSError) as exc:
            raise ws_error(exc) from exc
        return parse_server_message(raw)

    def _close_ws(self) -> None:
        self.ws = None
        self._ws_stack.close()

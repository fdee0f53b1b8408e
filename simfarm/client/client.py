"""The synchronous Python façade of simfarm."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from simfarm.client.errors import ApiError, ConnectionFailed, JobCancelled, JobFailed
from simfarm.client.workflow import WorkflowMixin
from simfarm.common.models import Job, JobEvent, JobPage, JobSpec
from simfarm.common.settings import Settings
from simfarm.common.states import JobState

DEFAULT_URL = "http://127.0.0.1:8765"


def resolve_url(url: str | None = None) -> str:
    """The gateway URL: explicit, ``SIMFARM_URL``, a running embedded service, or default."""
    if url:
        return url.rstrip("/")
    if os.environ.get("SIMFARM_URL"):
        return os.environ["SIMFARM_URL"].rstrip("/")
    from simfarm.client.embedded import read_state_file

    state = read_state_file(Settings().state_dir)
    if state and state.get("url"):
        return state["url"]
    return DEFAULT_URL


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        raise ApiError(
            response.status_code,
            body.get("error", "error"),
            body.get("detail", response.text),
            body.get("fields"),
        )
    except ValueError:
        raise ApiError(response.status_code, "error", response.text[:500]) from None


class Client(WorkflowMixin):
    """Talks to a simfarm gateway over HTTP. Safe to share between threads."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 30.0
    ) -> None:
        self.url = resolve_url(url)
        token = token or os.environ.get("SIMFARM_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach the simfarm gateway at {self.url} ({exc}); "
                "start it with `simfarm up` or set SIMFARM_URL"
            ) from exc
        _raise_for(response)
        return response

    def submit(
        self,
        spec: JobSpec | Mapping[str, Any],
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a job and return it as stored (state ``pending``)."""
        body = spec.model_dump(mode="json") if isinstance(spec, JobSpec) else dict(spec)
        if priority is not None:
            body["priority"] = priority
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Job.model_validate(
            self._request("POST", "/api/v1/jobs", json=body, headers=headers).json()
        )

    def get(self, job_id: str) -> Job:
        """The job's current state."""
        return Job.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}").json())

    def list(
        self, state: JobState | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """One page of jobs."""
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = str(state)
        if cursor:
            params["cursor"] = cursor
        return JobPage.model_validate(self._request("GET", "/api/v1/jobs", params=params).json())

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (a running one is stopped by its worker shortly after)."""
        return Job.model_validate(self._request("POST", f"/api/v1/jobs/{job_id}/cancel").json())

    def events(
        self, job_id: str, since: str | None = None, wait: float = 0
    ) -> builtins.list[JobEvent]:
        """The job's events after ``since``; with ``wait`` long-polls for new ones."""
        params: dict[str, Any] = {}
        if since:
            params["since"] = since
        if wait:
            params["wait"] = wait
        body = self._request(
            "GET", f"/api/v1/jobs/{job_id}/events", params=params, timeout=wait + 30
        ).json()
        return [JobEvent.model_validate(e) for e in body["events"]]

    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The job's output lines; with ``follow`` keeps going until the job ends."""
        final = {s.value for s in JobState if s.final}
        since: str | None = None
        while True:
            events = self.events(job_id, since=since, wait=10 if follow else 0)
            ended = False
            for event in events:
                since = event.id
                if event.type == "log":
                    yield str(event.data.get("line", ""))
                elif event.type == "state" and event.data.get("to") in final:
                    ended = True
            if not follow or ended:
                return
            if not events and self.get(job_id).final:
                follow = False  # one more read without waiting, then stop

    def wait(
        self, job_id: str, timeout: float | None = None, raise_on_failure: bool = False
    ) -> Job:
        """Block until the job finishes (or raise ``TimeoutError``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        since: str | None = None
        while True:
            job = self.get(job_id)
            if job.final:
                break
            remaining = 10.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} still {job.state.value} after {timeout} s")
            events = self.events(job_id, since=since, wait=min(10.0, max(0.05, remaining)))
            if events:
                since = events[-1].id
        if raise_on_failure and job.state is JobState.FAILED:
            raise JobFailed(job)
        if raise_on_failure and job.state is JobState.CANCELLED:
            raise JobCancelled(job)
        return job

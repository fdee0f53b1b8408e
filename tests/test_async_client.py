"""The asyncio façade against the real gateway and Celery worker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest

import simfarm.client.async_client as async_client_module
from simfarm import AsyncClient
from simfarm.client.errors import JobCancelled, JobFailed
from simfarm.common.models import JobSpec, ResourceRequest
from simfarm.common.states import JobState
from simfarm.common.store import JobStore

PY = sys.executable


@pytest.fixture
def gateway_url(gateway: str, worker: subprocess.Popen[bytes]) -> str:
    return gateway


def test_submit_follow_logs_wait_and_cancel(gateway_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(gateway_url) as client:
            script = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n"
            job = await client.submit([PY, "-c", script], priority=6)
            assert job.priority == 6
            lines = [line async for line in client.logs(job.id, follow=True)]
            assert lines == ["line 0", "line 1", "line 2"]
            done = await client.wait(job.id, timeout=30, raise_on_failure=True)
            assert done.state is JobState.COMPLETED

            bad = await client.submit({"argv": [PY, "-c", "raise SystemExit(5)"]})
            with pytest.raises(JobFailed) as failed:
                await client.wait(bad.id, timeout=30, raise_on_failure=True)
            assert failed.value.job.exit_code == 5

            slow = await client.submit([PY, "-c", "import time; time.sleep(60)"])
            await client.cancel(slow.id)
            with pytest.raises(JobCancelled):
                await client.wait(slow.id, timeout=30, raise_on_failure=True)
            page = await client.list(limit=5)
            assert slow.id in [j.id for j in page.jobs]
            assert "test-node" in [n.name for n in await client.workers()]
            assert "max_jobs" in await client.limits("test-node")

    asyncio.run(main())


def test_wait_all_follows_1000_jobs_on_one_websocket(
    gateway_url: str, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Jobs no node can take (64 cores) stay pending until cancelled behind wait_all's back.
    spec = JobSpec(argv=["true"], priority=0, resources=ResourceRequest(cores=64))
    ids = [store.create(spec)[0].id for _ in range(1000)]
    opened: list[str] = []
    real_connect = async_client_module.connect

    def counting_connect(url: str, **kwargs: Any) -> Any:
        opened.append(url)
        return real_connect(url, **kwargs)

    monkeypatch.setattr(async_client_module, "connect", counting_connect)
    subscribed = threading.Event()

    def cancel_all() -> None:
        subscribed.wait(30)
        for job_id in ids:
            store.request_cancel(job_id)

    requests: list[str] = []

    async def count(request: httpx.Request) -> None:
        requests.append(f"{request.method} {request.url.path}")

    async def main() -> list[Any]:
        async with AsyncClient(gateway_url) as client:
            client._http.event_hooks["request"].append(count)
            waiting = asyncio.create_task(client.wait_all(ids, timeout=60))
            while not opened:  # the subscription is on its way: cancel from elsewhere
                await asyncio.sleep(0.01)
            subscribed.set()
            return await waiting

    canceller = threading.Thread(target=cancel_all)
    canceller.start()
    jobs = asyncio.run(main())
    canceller.join(30)
    assert len(opened) == 1
    assert requests == ["POST /api/v1/jobs/query"]  # the ended jobs read at once, not 1000 GETs
    assert [j.id for j in jobs] == ids
    assert {j.state for j in jobs} == {JobState.CANCELLED}


def test_sync_and_async_clients_share_models(gateway_url: str) -> None:
    from simfarm import Client

    async def main() -> tuple[Any, Any]:
        async with AsyncClient(gateway_url) as aclient:
            job = await aclient.submit([PY, "-c", "print(1)"])
            return job, await aclient.wait(job.id, timeout=30)

    job, done = asyncio.run(main())
    with Client(gateway_url) as client:
        same = client.get(job.id)
    assert type(same) is type(done) and same == done

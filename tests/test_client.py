"""The synchronous façade against the real gateway and Celery worker."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from simfarm import Client
from simfarm.client import flows
from simfarm.client.errors import ApiError, JobCancelled, JobFailed, NotFound, WaitTimeout
from simfarm.common.hfss import create_hfss_config
from simfarm.common.models import Job, JobSpec
from simfarm.common.settings import Settings
from simfarm.common.states import JobState

PY = sys.executable
SLEEPER = [PY, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def client(gateway: str, worker: subprocess.Popen[bytes]) -> Iterator[Client]:
    with Client(gateway) as c:
        yield c


def test_submit_wait_and_read_the_output(client: Client) -> None:
    job = client.submit([PY, "-c", "print('one'); print('two')"], priority=7)
    assert job.state is JobState.PENDING and job.priority == 7
    done = client.wait(job.id, timeout=30, raise_on_failure=True)
    assert done.state is JobState.COMPLETED and done.exit_code == 0
    assert list(client.logs(job.id)) == ["one", "two"]
    assert client.get(job.id).state is JobState.COMPLETED
    assert job.id in [j.id for j in client.list(state="completed", limit=1000).jobs]


def test_follow_streams_lines_while_the_job_runs(client: Client) -> None:
    script = (
        "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
    )
    job = client.submit(JobSpec(argv=[PY, "-c", script]))
    lines = client.logs(job.id, follow=True)
    assert next(lines) == "tick 0"
    assert client.get(job.id).state is JobState.RUNNING  # the first line came while running
    assert list(lines) == ["tick 1", "tick 2"]
    assert client.get(job.id).state is JobState.COMPLETED


def test_failures_and_cancellations_raise_when_asked(client: Client) -> None:
    bad = client.submit({"argv": [PY, "-c", "raise SystemExit(3)"]})
    with pytest.raises(JobFailed) as failed:
        client.wait(bad.id, timeout=30, raise_on_failure=True)
    assert failed.value.job.exit_code == 3
    assert client.wait(bad.id).state is JobState.FAILED  # no raise unless asked

    slow = client.submit(SLEEPER)
    with pytest.raises(WaitTimeout) as timed_out:
        client.wait(slow.id, timeout=0.5)
    assert isinstance(timed_out.value, TimeoutError) and timed_out.value.pending == [slow.id]
    client.cancel(slow.id)
    with pytest.raises(JobCancelled):
        client.wait(slow.id, timeout=30, raise_on_failure=True)


def test_errors_are_typed(client: Client) -> None:
    with pytest.raises(NotFound):
        client.get("nosuchjob")
    with pytest.raises(NotFound):
        client.wait("nosuchjob", timeout=10)
    with pytest.raises(ApiError) as invalid:
        client.submit({"argv": ["true"], "priority": 11})
    assert invalid.value.status == 422 and invalid.value.fields[0]["field"] == "priority"


def test_stream_follows_a_job_over_the_websocket(client: Client) -> None:
    job = client.submit([PY, "-c", "print('hello')"])
    seen = []
    for event in client.stream(jobs=[job.id], since="0"):
        seen.append((event.type, event.data.get("to") or event.data.get("line")))
        if event.type == "state" and event.data["to"] in ("completed", "failed"):
            break
    assert seen == [
        ("state", "pending"), ("state", "scheduled"), ("state", "running"),
        ("log", "hello"), ("state", "completed"),
    ]


def test_get_jobs_reads_many_in_order_and_names_a_missing_one(client: Client) -> None:
    jobs = [client.submit([PY, "-c", f"print({i})"]) for i in range(3)]
    ids = [jobs[2].id, jobs[0].id, jobs[1].id]
    assert [j.id for j in client.get_jobs(ids)] == ids
    with pytest.raises(NotFound, match="no-such-job"):
        client.get_jobs([jobs[0].id, "no-such-job"])
    assert client.get_jobs([]) == []


def test_get_jobs_from_a_gateway_without_the_query_route_reads_one_by_one() -> None:
    """An older gateway answers 405 to POST /api/v1/jobs/query: the flow asks per job."""
    steps = flows.Steps(flows.read_jobs(["a", "b"]))
    first = next(steps)
    assert isinstance(first, flows.CallMany)
    assert [op.request.path for op in first.ops] == ["/api/v1/jobs/query"]
    steps.fail(ApiError(405, "method_not_allowed", "no such route"))
    second = next(steps)
    assert isinstance(second, flows.CallMany)
    assert [op.request.path for op in second.ops] == ["/api/v1/jobs/a", "/api/v1/jobs/b"]
    made = [Job(id=i, spec=JobSpec(argv=["true"]), state=JobState.PENDING, priority=5,
                created_at=0.0, updated_at=0.0) for i in ("b", "a")]
    steps.answer(made)
    with pytest.raises(StopIteration):
        next(steps)
    assert [j.id for j in steps.value] == ["a", "b"]


def test_wait_all_without_websocket_falls_back_to_polling(client: Client) -> None:
    # A gateway whose WebSocket route is missing (as behind a proxy that drops upgrades).
    client._config.ws_url = client._config.ws_url.replace("/api/v1/ws", "/api/v1/no-ws")
    jobs = [client.submit([PY, "-c", f"print({i})"]) for i in range(3)]
    done = client.wait_all([j.id for j in jobs], timeout=30)
    assert [j.id for j in done] == [j.id for j in jobs]
    assert {j.state for j in done} == {JobState.COMPLETED}


def test_32_threads_submit_and_cancel_at_once(client: Client) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def work(n: int) -> None:
        try:
            start.wait(10)
            for i in range(4):
                job = client.submit(SLEEPER, priority=n % 11, idempotency_key=f"t{n}-{i}-{id(ids)}")
                client.cancel(job.id)
                with lock:
                    ids.append(job.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(set(ids)) == 128
    finished = client.wait_all(ids, timeout=60)
    assert {j.state for j in finished} == {JobState.CANCELLED}


def test_hfss_config_runs_as_an_hfss_job(
    client: Client, hfss_node: Settings, tmp_path: Path
) -> None:
    project = tmp_path / "antenna.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=4\n$end 'Setup1'\n")
    config = create_hfss_config(project_path=str(project), design_name="main",
                                setup_name="Setup1")
    job = client.submit(config, priority=6)
    assert job.spec.kind == "hfss" and job.priority == 6
    assert job.spec.hfss is not None and job.spec.hfss.jobid == config.jobid
    done = client.wait(job.id, timeout=60, raise_on_failure=True)
    assert done.node == "hfss-node" and done.progress and done.progress["phase"] == "done"


def test_embedded_client_runs_a_private_farm_and_stops_it() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    client = Client(embedded=True)
    try:
        job = client.submit([PY, "-c", "print('inside')"])
        assert client.wait(job.id, timeout=60).state is JobState.COMPLETED
        assert list(client.logs(job.id)) == ["inside"]
        children = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "redis-server" in names and "simfarm.workers.main" in names
    finally:
        client.close()
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive


def test_priority_workers_and_limits(client: Client) -> None:
    blocker = client.submit(SLEEPER)
    held = client.submit(JobSpec(argv=["true"], depends_on={"after_ok": [blocker.id]}))
    try:
        assert client.set_priority(held.id, 9).priority == 9
        assert client.get(held.id).priority == 9
    finally:
        client.cancel(held.id)
        client.cancel(blocker.id)
    with pytest.raises(ApiError) as finished:
        client.set_priority(held.id, 1)
    assert finished.value.status == 409
    node = next(n for n in client.workers() if n.name == "test-node")
    assert node.alive and node.cores_total == 8
    assert client.set_limits("test-node", min_free_memory_mb=1)["min_free_memory_mb"] == 1
    assert client.limits("test-node")["min_free_memory_mb"] == 1
    assert client.set_limits("test-node", min_free_memory_mb=None)["min_free_memory_mb"] is None
    with pytest.raises(NotFound):
        client.limits("no-such-node")

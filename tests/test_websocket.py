"""``/api/v1/ws`` against a real gateway (gunicorn) and Redis: subscriptions, resume with
no gap and no duplicate, heartbeats, slow clients, 200 clients at once."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from simfarm.common.models import JobSpec
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store import JobStore
from tests.helpers import free_port, start_gateway, stop_process

PREFIX = "wstest:"


class WsFarm:
    """A gateway of its own (key prefix ``wstest:``, many threads, small queues) whose
    events the tests write straight into the store: no worker needed."""

    def __init__(self, url: str, store: JobStore) -> None:
        self.url = url
        self.ws_url = url.replace("http://", "ws://") + "/api/v1/ws"
        self.store = store

    def connect(self, **kwargs: Any) -> ClientConnection:
        return connect(self.ws_url, proxy=None, open_timeout=10, **kwargs)

    def job(self) -> str:
        job, _ = self.store.create(JobSpec(argv=["true"]))
        return job.id

    def run_job(self, job_id: str, lines: int = 2) -> None:
        """pending → scheduled → running → (log lines) → completed, straight in Redis."""
        self.store.transition(job_id, JobState.SCHEDULED, fields={"node": "n1"}, new_attempt=True)
        self.store.transition(job_id, JobState.RUNNING)
        self.store.append_events(job_id, [("log", {"line": f"line {i}"}) for i in range(lines)])
        self.store.transition(job_id, JobState.COMPLETED, event={"exit_code": 0})

    def stored_ids(self, job_id: str) -> list[str]:
        return [e.id for e in self.store.events(job_id, limit=10_000)]


@pytest.fixture(scope="module")
def wsfarm(settings: Settings, redis_client: redis.Redis) -> Iterator[WsFarm]:
    gw_settings = settings.model_copy(
        update={
            "key_prefix": PREFIX,
            "gateway_port": free_port(),
            "gateway_threads": 300,
            "ws_max_clients": 260,
            "ws_queue_size": 1000,
            "ws_send_buffer_bytes": 8192,
            "ws_heartbeat_s": 0.5,
        }
    )
    proc = start_gateway(gw_settings, settings.state_dir / "ws-gateway.log")
    yield WsFarm(f"http://127.0.0.1:{gw_settings.gateway_port}", JobStore(redis_client, PREFIX))
    stop_process(proc)


def subscribe(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    ws.send(json.dumps({"op": "subscribe", **fields}))
    answer = json.loads(ws.recv(timeout=10))
    assert answer["op"] == "subscribed", answer
    return answer


def messages(ws: ClientConnection, timeout: float = 10) -> Iterator[dict[str, Any]]:
    while True:
        yield json.loads(ws.recv(timeout=timeout))


def collect_events(ws: ClientConnection, until_id: str) -> list[dict[str, Any]]:
    """Events up to and including ``until_id`` (other messages skipped)."""
    out: list[dict[str, Any]] = []
    for message in messages(ws):
        if message["op"] == "event":
            out.append(message)
            if message["id"] == until_id:
                return out


def test_subscriber_sees_a_jobs_whole_life_in_order(wsfarm: WsFarm) -> None:
    with wsfarm.connect() as ws:
        answer = subscribe(ws)
        assert answer["heartbeat_s"] == 0.5 and answer["jobs"] is None
        assert next(messages(ws))["op"] == "live"
        job = wsfarm.job()
        wsfarm.run_job(job)
        expected = wsfarm.stored_ids(job)
        got = [e for e in collect_events(ws, expected[-1]) if e["job_id"] == job]
    assert [e["id"] for e in got] == expected
    assert [e["data"].get("to") for e in got if e["type"] == "state"] == [
        "pending", "scheduled", "running", "completed",
    ]
    assert [e["data"]["line"] for e in got if e["type"] == "log"] == ["line 0", "line 1"]


def test_filters_and_snapshot(wsfarm: WsFarm) -> None:
    mine, other, done = wsfarm.job(), wsfarm.job(), wsfarm.job()
    wsfarm.run_job(done)
    with wsfarm.connect() as by_job, wsfarm.connect() as by_state:
        # Start after done's last event: the hub may not have read it yet when we subscribe.
        after_done = wsfarm.stored_ids(done)[-1]
        answer = subscribe(by_job, jobs=[mine, done, "nosuchjob"], types=["state"], snapshot=True,
                           since=after_done)
        assert answer["jobs"] == {mine: "pending", done: "completed", "nosuchjob": None}
        subscribe(by_state, states=["running"], since=after_done)
        wsfarm.run_job(other)
        wsfarm.run_job(mine)
        last = wsfarm.stored_ids(mine)[-1]
        job_events = collect_events(by_job, last)
        state_events = collect_events(by_state, wsfarm.store.events(mine)[-1].id)
    assert {e["job_id"] for e in job_events} == {mine}
    assert [e["data"]["to"] for e in job_events] == ["scheduled", "running", "completed"]
    # entering or leaving "running", for both jobs, and nothing else
    assert [(e["job_id"], e["data"]["to"]) for e in state_events] == [
        (other, "running"), (other, "completed"), (mine, "running"), (mine, "completed"),
    ]


def test_invalid_subscription_gets_an_error_and_close_1008(wsfarm: WsFarm) -> None:
    with wsfarm.connect() as ws:
        ws.send(json.dumps({"op": "subscribe", "states": ["sleeping"], "colour": "red"}))
        error = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert error["op"] == "error" and error["error"] == "validation_error"
    assert {f["field"] for f in error["fields"]} == {"states.0", "colour"}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_heartbeat_moves_the_cursor_past_filtered_events(wsfarm: WsFarm) -> None:
    job = wsfarm.job()
    with wsfarm.connect() as ws:
        subscribe(ws, jobs=[job], types=["progress"])
        ids = wsfarm.store.append_events(job, [("log", {"line": "not wanted"})])
        beat = next(m for m in messages(ws) if m["op"] == "heartbeat" and m["id"] >= ids[-1])
    assert beat["id"] == ids[-1]


def test_resume_after_a_killed_connection_loses_and_duplicates_nothing(wsfarm: WsFarm) -> None:
    job = wsfarm.job()
    first_half = threading.Event()
    produce_more = threading.Event()

    def produce() -> None:
        for batch in range(30):
            if batch == 10:
                first_half.set()
                produce_more.wait(20)
            wsfarm.store.append_events(job, [("log", {"line": f"{batch}.{i}"}) for i in range(20)])
        wsfarm.store.transition(job, JobState.CANCELLED, sources=[JobState.PENDING])

    got: list[str] = []
    with wsfarm.connect() as ws:
        subscribe(ws, jobs=[job], since="0")
        producer = threading.Thread(target=produce)
        producer.start()
        first_half.wait(20)
        for message in messages(ws):
            if message["op"] == "event":
                got.append(message["id"])
            if len(got) == 100:
                break
        ws.socket.shutdown(socket.SHUT_RDWR)  # cut the line mid-stream, no close frame
    produce_more.set()  # events keep coming while the client is away and reconnects
    with wsfarm.connect() as ws:
        subscribe(ws, jobs=[job], since=got[-1])
        for message in messages(ws):
            if message["op"] == "event":
                got.append(message["id"])
                if message["type"] == "state" and message["data"]["to"] == "cancelled":
                    break
    producer.join(20)
    assert got == wsfarm.stored_ids(job)
    assert len(got) == 1 + 600 + 1


def _small_buffer_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


def _until_cancelled(ws: ClientConnection) -> Iterator[dict[str, Any]]:
    for message in messages(ws):
        if message["op"] == "event":
            yield message
            if message["type"] == "state" and message["data"]["to"] == "cancelled":
                return


def test_slow_client_is_closed_with_4008_and_resumes_without_loss(wsfarm: WsFarm) -> None:
    job = wsfarm.job()
    port = int(wsfarm.url.rsplit(":", 1)[1])
    with wsfarm.connect() as observer, wsfarm.connect(
        sock=_small_buffer_socket(port), max_queue=1, compression=None
    ) as slow:
        subscribe(observer, jobs=[job], types=["state"])
        subscribe(slow, jobs=[job])
        seen: list[dict[str, Any]] = []
        final = wsfarm.store.transition  # the observer reads until the job is cancelled
        reader = threading.Thread(target=lambda: seen.extend(_until_cancelled(observer)))
        reader.start()
        line = "x" * 1000
        ids: list[str] = []
        for _ in range(30):  # 3 MB: more than the queue (1000) and the socket buffers
            ids += wsfarm.store.append_events(job, [("log", {"line": line})] * 100)
        ids.append(final(job, JobState.CANCELLED, sources=[JobState.PENDING]))
        # the hub hands each batch to every client at once: once the observer has the
        # last event, the slow client's queue has overflowed long ago
        reader.join(30)
        assert [e["id"] for e in seen] == ids[-1:]
        received: list[str] = []
        with pytest.raises(ConnectionClosed) as closed:
            for message in messages(slow):
                if message["op"] == "event":
                    received.append(message["id"])
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    assert 0 < len(received) < len(ids)
    with wsfarm.connect() as ws:
        subscribe(ws, jobs=[job], since=received[-1])
        received += [e["id"] for e in collect_events(ws, ids[-1])]
    assert received == ids


def test_200_clients_all_see_every_event(wsfarm: WsFarm) -> None:
    job = wsfarm.job()
    total = 200

    async def main() -> list[list[str]]:
        ready = asyncio.Event()
        count = [0]
        tasks = [
            asyncio.create_task(_run_until_final(wsfarm.ws_url, job, ready, count, total))
            for _ in range(total)
        ]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.to_thread(wsfarm.run_job, job, 20)
        return await asyncio.wait_for(asyncio.gather(*tasks), 60)

    results = asyncio.run(main())
    expected = wsfarm.stored_ids(job)[1:]  # everything after "submitted"
    assert len(results) == total
    assert all(seen == expected for seen in results)


async def _run_until_final(url: str, job: str, ready: asyncio.Event, count: list[int],
                           total: int) -> list[str]:
    async with aconnect(url, proxy=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"op": "subscribe", "jobs": [job]}))
        assert json.loads(await ws.recv())["op"] == "subscribed"
        count[0] += 1
        if count[0] == total:
            ready.set()
        seen: list[str] = []
        async for raw in ws:
            message = json.loads(raw)
            if message["op"] == "event":
                seen.append(message["id"])
                if message["type"] == "state" and message["data"]["to"] == "completed":
                    break
        return seen


def test_gateway_stop_closes_websockets_with_1001(settings: Settings, wsfarm: WsFarm) -> None:
    gw_settings = settings.model_copy(update={"key_prefix": PREFIX, "gateway_port": free_port()})
    proc: subprocess.Popen[bytes] = start_gateway(gw_settings, settings.state_dir / "ws-stop.log")
    try:
        with connect(f"ws://127.0.0.1:{gw_settings.gateway_port}/api/v1/ws", proxy=None) as ws:
            subscribe(ws)
            proc.terminate()
            with pytest.raises(ConnectionClosed) as closed:
                for _ in messages(ws):
                    pass
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert proc.wait(timeout=10) == 0
    finally:
        stop_process(proc)


def test_client_stream_resumes_across_a_gateway_restart(
    settings: Settings, redis_client: redis.Redis
) -> None:
    from simfarm import Client

    gw = settings.model_copy(update={"key_prefix": PREFIX, "gateway_port": free_port()})
    log = settings.state_dir / "ws-restart.log"
    proc = start_gateway(gw, log)
    store = JobStore(redis_client, PREFIX)
    job = store.create(JobSpec(argv=["true"]))[0].id
    store.append_events(job, [("log", {"line": f"before {i}"}) for i in range(50)])
    got: list[str] = []
    try:
        with Client(f"http://127.0.0.1:{gw.gateway_port}") as client:
            for event in client.stream(jobs=[job], since="0"):
                got.append(event.id)
                if len(got) == 20:
                    proc.kill()  # no close frame, no goodbye
                    proc.wait(10)
                    store.append_events(job, [("log", {"line": f"during {i}"}) for i in range(50)])
                    proc = start_gateway(gw, log)
                    store.append_events(job, [("log", {"line": f"after {i}"}) for i in range(50)])
                    store.transition(job, JobState.CANCELLED, sources=[JobState.PENDING])
                if event.type == "state" and event.data["to"] == "cancelled":
                    break
    finally:
        stop_process(proc)
    assert got == [e.id for e in store.events(job, limit=10_000)]
    assert len(got) == 1 + 150 + 1


def test_a_replay_of_named_jobs_does_not_hide_a_later_event_of_an_earlier_job() -> None:
    """The streams of the named jobs are replayed one after the other: an event of job A
    written after A's stream was read (queued live for the client) may be older than one
    read later from job B's stream. It must still go out; one the replay sent must not
    go out twice. A replay of the global stream is read in order, so it covers everything
    up to its newest event."""
    from simfarm.common.models import JobEvent
    from simfarm.common.ws_protocol import event_key
    from simfarm.gateway.ws.replay import Replayed

    def event(event_id: str, job: str) -> JobEvent:
        return JobEvent(id=event_id, job_id=job, type="state", ts=0.0, data={"to": "running"})

    by_job = Replayed(by_job=True)
    by_job.add(event("1000-0", "a"))
    by_job.add(event("3000-0", "b"))  # read from b's stream after a's was read
    assert not by_job.covers(event_key("2000-0"), "a")  # a's event written in between
    assert by_job.covers(event_key("1000-0"), "a") and by_job.covers(event_key("3000-0"), "b")
    assert not by_job.covers(event_key("2500-0"), "c")  # a job the replay found nothing of
    in_order = Replayed(by_job=False)
    in_order.add(event("1000-0", "a"))
    in_order.add(event("3000-0", "b"))
    assert in_order.covers(event_key("2000-0"), "a")

"""Notifications when jobs and sweeps end, on the test farm: a real local HTTP receiver
(signatures checked, 500s retried, nothing lost while it is down, dispatch never held
up by it) and a real local SMTP server (aiosmtpd) for e-mail."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis
from aiosmtpd.controller import Controller

from simfarm.common.models import JobSpec
from simfarm.common.notify import SIGNATURE_HEADER, NotifySpec, Webhook, verify
from simfarm.common.settings import Settings
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.notify import NotifyStore
from simfarm.workers.context import RunnerTable, WorkerContext
from simfarm.workers.notifier import Notifier
from tests.helpers import FarmApi, free_port, wait_for

SECRET = "a-long-shared-secret-for-tests"


class Receiver:
    """A real HTTP server on a loopback port that records what it is sent. ``answers``
    are the statuses of the next requests (then 200); ``gate`` (when set) holds every
    request until it is opened; it can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.requests.append({"headers": dict(self.headers), "body": body,
                                              "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def about(self, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if job_id in r["body"].decode()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    if server.gate is not None:
        server.gate.set()
    server.stop()


class Farm(FarmApi):
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def webhook(self, url: str, **extra: Any) -> dict[str, Any]:
        response = self.http.post("/api/v1/webhooks", json={"url": url, **extra})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def deliveries(self, hook_id: str) -> list[dict[str, Any]]:
        return list(self.http.get(f"/api/v1/webhooks/{hook_id}/deliveries").json())


@pytest.fixture
def farm_api(farm: httpx.Client) -> Iterator[Farm]:
    api = Farm(farm)
    yield api
    for hook in farm.get("/api/v1/webhooks").json():  # an all-jobs hook must not outlive
        farm.delete(f"/api/v1/webhooks/{hook['id']}")


def test_signed_job_summary_delivered_after_two_500s(farm_api: Farm, receiver: Receiver) -> None:
    hook = farm_api.webhook(receiver.url, secret=SECRET)
    assert hook["secret"] == SECRET and hook["id"].startswith("wh_")
    assert "secret" not in farm_api.http.get(f"/api/v1/webhooks/{hook['id']}").json()
    receiver.answers = [500, 500]
    job_id = farm_api.submit(argv=["true"], name="notified", notify={"webhooks": [hook["id"]]})
    got = wait_for(lambda: receiver.about(job_id), lambda r: len(r) == 3, 30,
                   "three attempts, the third answered 200")
    assert [r["status"] for r in got] == [500, 500, 200]
    assert len({r["headers"]["X-Simfarm-Delivery"] for r in got}) == 1  # one delivery
    for request in got:  # every attempt is signed: the receiver can check it
        assert verify(SECRET, request["body"], request["headers"][SIGNATURE_HEADER])
        assert not verify("another-secret-of-16+", request["body"],
                          request["headers"][SIGNATURE_HEADER])
    body = json.loads(got[-1]["body"])
    assert body["event"] == "job.completed" and got[-1]["headers"]["X-Simfarm-Event"] == (
        "job.completed")
    assert (body["job"]["id"], body["job"]["state"], body["job"]["exit_code"]) == (
        job_id, "completed", 0)
    assert body["links"]["page"].endswith(f"/ui/jobs/{job_id}")
    log = wait_for(lambda: farm_api.deliveries(hook["id"]), lambda e: len(e) == 3, 10,
                   "the delivery log")
    assert [(e["attempt"], e["ok"], e["status"], e["final"]) for e in log] == [
        (3, True, 200, True), (2, False, 500, False), (1, False, 500, False)]
    job_log = farm_api.http.get(f"/api/v1/jobs/{job_id}/notifications").json()
    assert [e["attempt"] for e in job_log] == [3, 2, 1]


def test_nothing_lost_while_the_receiver_is_down(farm_api: Farm, receiver: Receiver) -> None:
    hook = farm_api.webhook(receiver.url, secret=SECRET)
    receiver.stop()  # nobody listens on the port now
    jobs = [farm_api.submit(argv=["true"], name=f"while-down-{i}",
                            notify={"webhooks": [hook["id"]]}) for i in range(3)]
    for job_id in jobs:  # the jobs end normally whatever the receiver does
        assert farm_api.wait_state(job_id, "completed")["state"] == "completed"
    failed = wait_for(lambda: farm_api.deliveries(hook["id"]),
                      lambda e: {x["job_id"] for x in e if not x["ok"]} == set(jobs), 20,
                      "failed attempts for every job")
    assert all(not e["final"] and "Connect" in (e["error"] or "") for e in failed)
    receiver.start()  # back on the same port
    wait_for(lambda: [receiver.about(j) for j in jobs], lambda r: all(r), 30,
             "every job's notification once the receiver is back")
    log = farm_api.deliveries(hook["id"])
    assert {e["job_id"] for e in log if e["ok"] and e["final"]} == set(jobs)
    assert all(len(receiver.about(j)) == 1 for j in jobs)


def test_a_hanging_receiver_does_not_hold_up_the_farm(farm_api: Farm, receiver: Receiver) -> None:
    hook = farm_api.webhook(receiver.url, secret=SECRET)
    receiver.gate = threading.Event()  # every request waits (3 s timeout on our side)
    first = farm_api.submit(argv=["true"], notify={"webhooks": [hook["id"]]})
    farm_api.wait_state(first, "completed")
    later = [farm_api.submit(argv=["true"], name=f"meanwhile-{i}") for i in range(3)]
    for job_id in later:  # dispatched and finished while the receiver still hangs
        farm_api.wait_state(job_id, "completed", timeout_s=15)
    assert not receiver.gate.is_set() and not receiver.about(first)
    receiver.gate.set()
    wait_for(lambda: receiver.about(first), lambda r: bool(r), 30, "the late delivery")


def test_all_jobs_webhook_slack_style_and_one_message_per_sweep(
    farm_api: Farm, receiver: Receiver
) -> None:
    hook = farm_api.webhook(receiver.url, template="slack", all_jobs=True,
                            events=["completed", "failed"])
    job_id = farm_api.submit(argv=["false"], name="slack-job")  # names no webhook
    got = wait_for(lambda: receiver.about(job_id), lambda r: bool(r), 30, "the job's message")
    text = json.loads(got[0]["body"])["text"]
    assert text.startswith("*simfarm*: job slack-job") and "failed" in text
    assert f"/ui/jobs/{job_id}|open>" in text
    cancelled = farm_api.submit(argv=["sleep", "30"], name="not-notified")
    farm_api.http.post(f"/api/v1/jobs/{cancelled}/cancel")
    sweep = farm_api.http.post("/api/v1/sweeps", json={
        "name": "notify-sweep", "variations": [{"n": i} for i in range(3)],
        "template": {"argv": ["sh", "-c", "echo {n}"]}}).json()
    msgs = wait_for(lambda: receiver.about(sweep["id"]), lambda r: bool(r), 30,
                    "the sweep's message")
    assert "sweep notify-sweep completed" in json.loads(msgs[0]["body"])["text"]
    assert "3 jobs: 3 completed" in json.loads(msgs[0]["body"])["text"]
    farm_api.wait_state(cancelled, "cancelled")
    wait_for(lambda: farm_api.deliveries(hook["id"]),
             lambda e: any(x["sweep_id"] == sweep["id"] for x in e), 10, "the sweep's log")
    # One message for the sweep, none per child; none for the cancelled job (not asked).
    children = [c["job_id"] for c in farm_api.http.get(
        f"/api/v1/sweeps/{sweep['id']}").json()["children"]]
    assert all(not receiver.about(c) for c in children)
    assert len(receiver.about(sweep["id"])) == 1 and not receiver.about(cancelled)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def test_email_through_a_real_smtp_server(farm_api: Farm, settings: Settings) -> None:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=settings.smtp_port)
    controller.start()
    try:
        job_id = farm_api.submit(argv=["sh", "-c", "exit 3"], name="mailed",
                                 notify={"email": ["lab@example.com"]})
        wait_for(lambda: mailbox.messages, lambda m: bool(m), 30, "the e-mail")
    finally:
        controller.stop()
    message = mailbox.messages[0]
    assert message["To"] == "lab@example.com" and message["From"] == settings.smtp_from
    assert message["Subject"].startswith("simfarm: job mailed") and "failed" in message["Subject"]
    assert f"/ui/jobs/{job_id}" in message.get_payload()
    log = wait_for(lambda: farm_api.http.get(f"/api/v1/jobs/{job_id}/notifications").json(),
                   lambda e: bool(e), 10, "the job's notification log")
    assert (log[0]["target"], log[0]["ok"], log[0]["final"]) == (
        "email:lab@example.com", True, True)


def test_bad_webhooks_and_notify_specs_are_refused(farm_api: Farm) -> None:
    http = farm_api.http
    bad = http.post("/api/v1/webhooks", json={"url": "ftp://x/y"})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "url"
    short = http.post("/api/v1/webhooks", json={"url": "http://x/y", "secret": "short"})
    assert short.status_code == 422 and short.json()["fields"][0]["field"] == "secret"
    spec = http.post("/api/v1/jobs", json={"argv": ["true"], "notify": {"webhooks": ["x"]}})
    assert spec.status_code == 422 and spec.json()["fields"][0]["field"].startswith(
        "notify.webhooks")
    mail = http.post("/api/v1/jobs", json={"argv": ["true"], "notify": {"email": ["nope"]}})
    assert mail.status_code == 422
    assert http.get("/api/v1/webhooks/wh_0000000000000000").status_code == 404
    # A job naming a webhook that does not exist runs; the log says why nothing was sent.
    job_id = farm_api.submit(argv=["true"], notify={"webhooks": ["wh_0123456789abcdef"]})
    log = wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}/notifications").json(),
                   lambda e: bool(e), 20, "the job's notification log")
    assert log[0]["final"] and not log[0]["ok"] and "not a webhook" in log[0]["error"]


def test_the_job_page_lists_its_notification_attempts(farm_api: Farm, receiver: Receiver) -> None:
    hook = farm_api.webhook(receiver.url, secret=SECRET)
    receiver.answers = [503]
    job_id = farm_api.submit(argv=["true"], notify={"webhooks": [hook["id"]]})
    wait_for(lambda: receiver.about(job_id), lambda r: len(r) == 2, 30, "the retry")
    wait_for(lambda: farm_api.http.get(f"/api/v1/jobs/{job_id}/notifications").json(),
             lambda e: len(e) == 2, 10, "both attempts logged")
    page = farm_api.http.get(f"/ui/jobs/{job_id}").text
    assert "notifications (2 attempts)" in page
    assert "delivered (200)" in page and "HTTP 503; will retry" in page


def test_a_job_never_calls_another_users_webhook(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """Named webhooks must be the job owner's: bob's is not called for alice's job."""
    prefix = f"notify-{uuid.uuid4().hex[:8]}:"
    own = settings.model_copy(update={"key_prefix": prefix})
    ctx = WorkerContext(settings=own, redis=redis_client,
                        jobs=JobStore.for_settings(redis_client, own),
                        nodes=NodeStore(redis_client, prefix), runners=RunnerTable({}))
    store = NotifyStore(redis_client, prefix)
    bobs = Webhook(id="wh_00000000000000b0", owner="bob", url="http://127.0.0.1:9/b",
                   created_at=time.time())
    alices = Webhook(id="wh_00000000000000a0", owner="alice", url="http://127.0.0.1:9/a",
                     all_jobs=True, created_at=time.time())
    store.add_webhook(bobs, SECRET)
    store.add_webhook(alices, SECRET)
    try:
        job, _ = ctx.jobs.create(JobSpec(argv=["true"], notify=NotifySpec(
            webhooks=[bobs.id], email=["alice@lab.example"])), owner="alice")
        ctx.jobs.transition(job.id, JobState.CANCELLED)
        notifier = Notifier(ctx, is_leader=lambda: True)
        assert store.ended_backlog() == 1  # queued by the cancel itself
        assert notifier.expand(time.time()) == 3
        queued = {d.target: d.url for d in store.due(time.time())}
        assert queued == {bobs.id: "", alices.id: alices.url,  # bob's: no URL, never sent
                          "email:alice@lab.example": "mailto:alice@lab.example"}
        notifier.stop()
    finally:
        keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
        redis_client.delete(*keys)

"""Notifications when a job or a sweep ends (docs/notifications.md): the webhook and
notification models, the JSON bodies (simfarm's own, Slack- and Teams-style), their
HMAC-SHA256 signature and the e-mail message. No I/O here: the store keeps them
(:mod:`simfarm.common.store.notify`), the notifier delivers them
(:mod:`simfarm.workers.notifier`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simfarm.common.names import each_matching

Template = Literal["simfarm", "slack", "teams"]
Ending = Literal["completed", "failed", "cancelled"]
ENDINGS: tuple[Ending, ...] = ("completed", "failed", "cancelled")
SIGNATURE_HEADER = "X-Simfarm-Signature"
_WEBHOOK_ID = re.compile(r"^wh_[0-9a-f]{16}$")
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def _check_url(value: str) -> str:
    if value.startswith("mailto:"):
        if not _EMAIL.match(value[7:]):
            raise ValueError("mailto: needs one e-mail address")
        return value
    if not re.match(r"^https?://[^\s/?#]+[^\s]*$", value):
        raise ValueError("must be an http:// or https:// URL, or mailto:ADDRESS")
    return value


class WebhookIn(BaseModel):
    """A webhook to register (``POST /api/v1/webhooks``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description=(
        "where to POST (http/https), or `mailto:ADDRESS` for an e-mail (needs SMTP)"))
    template: Template = Field(default="simfarm", description=(
        "body: `simfarm` (the job summary), `slack` or `teams` (incoming-webhook text)"))
    secret: str | None = Field(default=None, min_length=16, max_length=200, description=(
        "HMAC-SHA256 key of the X-Simfarm-Signature header; generated when left out "
        "(and shown once, in this answer)"))
    all_jobs: bool = Field(default=False, description=(
        "for every job and sweep of its owner; otherwise only for jobs that name it "
        "(`notify.webhooks`)"))
    events: list[Ending] = Field(default_factory=lambda: list(ENDINGS),
                                 description="which endings to notify")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class Webhook(BaseModel):
    """A registered webhook (its secret is never shown again after creation)."""

    id: str
    owner: str | None = None
    url: str
    template: Template = "simfarm"
    all_jobs: bool = False
    events: list[Ending] = Field(default_factory=lambda: list(ENDINGS))
    created_at: float


class WebhookCreated(Webhook):
    """The answer to a registration: the webhook with its secret, this once."""

    secret: str


class NotifySpec(BaseModel):
    """A job's (or a sweep template's) notifications when it ends."""

    model_config = ConfigDict(extra="forbid")

    webhooks: list[str] = Field(default_factory=list, max_length=20, description=(
        "ids of the owner's webhooks (`wh_...`) to call"))
    email: list[str] = Field(default_factory=list, max_length=20, description=(
        "addresses to e-mail (when the farm has SMTP configured)"))

    @field_validator("webhooks")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        return each_matching(value, _WEBHOOK_ID, "not a webhook id: {value} (wh_ and 16 hex "
                             "digits)")

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        return each_matching(value, _EMAIL, "not an e-mail address: {value}")


class Delivery(BaseModel):
    """One message to one target, queued until delivered or given up."""

    id: str
    target: str = Field(description="webhook id, or `email:ADDRESS` for a job's address")
    url: str
    template: Template = "simfarm"
    event: str = Field(description="`job.completed`, `sweep.failed`, `ping`...")
    job_id: str | None = None
    sweep_id: str | None = None
    owner: str | None = None
    body: dict[str, Any]
    attempts: int = 0
    created_at: float = Field(default_factory=time.time)


class DeliveryLog(BaseModel):
    """One attempt to deliver, as the owner sees it."""

    delivery: str
    target: str
    url: str
    event: str
    job_id: str | None = None
    sweep_id: str | None = None
    attempt: int
    at: float
    ok: bool
    status: int | None = Field(default=None, description="the receiver's HTTP status")
    error: str | None = None
    duration_ms: int = 0
    final: bool = Field(description="no more attempts: delivered, or given up")


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def job_summary(job: Any, base_url: str) -> dict[str, Any]:
    """The ``simfarm`` body of a job notification (``job``: a :class:`Job`)."""
    started = job.started_at.timestamp() if job.started_at else None
    finished = job.finished_at.timestamp() if job.finished_at else None
    return {
        "event": f"job.{job.state.value}",
        "job": {
            "id": job.id, "name": job.spec.name or job.spec.kind, "kind": job.spec.kind,
            "state": job.state.value, "owner": job.owner, "node": job.node,
            "exit_code": job.exit_code, "reason": job.reason or job.error,
            "priority": job.priority, "attempt": job.attempt,
            "submitted_at": _iso(job.created_at.timestamp()), "started_at": _iso(started),
            "finished_at": _iso(finished),
            "runtime_s": round(finished - started, 3) if started and finished else None,
            "progress": job.progress,
        },
        "links": {"job": f"{base_url}/api/v1/jobs/{job.id}",
                  "page": f"{base_url}/ui/jobs/{job.id}"},
    }


def sweep_summary(sweep: Any, state: str, base_url: str) -> dict[str, Any]:
    """The ``simfarm`` body of a sweep notification (``sweep``: a :class:`Sweep`)."""
    return {
        "event": f"sweep.{state}",
        "sweep": {"id": sweep.id, "name": sweep.name, "state": state, "size": sweep.size,
                  "owner": sweep.owner, "counts": sweep.counts},
        "links": {"sweep": f"{base_url}/api/v1/sweeps/{sweep.id}"},
    }


def _headline(body: dict[str, Any]) -> tuple[str, str, str]:
    """``(title, details, link)`` of a body, for chat and e-mail."""
    if "sweep" in body:
        s = body["sweep"]
        counts = ", ".join(f"{n} {k}" for k, n in s["counts"].items() if n)
        return (f"sweep {s['name'] or s['id'][:12]} {s['state']}",
                f"{s['size']} jobs: {counts}", body["links"]["sweep"])
    if "job" in body:
        j = body["job"]
        parts = [f"on {j['node']}" if j["node"] else "",
                 f"exit code {j['exit_code']}" if j["exit_code"] is not None else "",
                 f"in {j['runtime_s']:.0f} s" if j["runtime_s"] is not None else "",
                 j["reason"] or ""]
        return (f"job {j['name']} ({j['id'][:12]}) {j['state']}",
                ", ".join(p for p in parts if p), body["links"]["page"])
    return ("simfarm test notification", body.get("message", ""), body.get("link", ""))


def render(template: Template, body: dict[str, Any]) -> bytes:
    """The bytes POSTed: simfarm's body as is, or an incoming-webhook text message
    (Slack's ``<url|text>`` links, Teams' Markdown ones)."""
    if template == "simfarm":
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    title, details, link = _headline(body)
    if template == "slack":
        text = f"*simfarm*: {title}" + (f" — {details}" if details else "") + (
            f" <{link}|open>" if link else "")
    else:
        text = f"**simfarm**: {title}" + (f" — {details}" if details else "") + (
            f" [open]({link})" if link else "")
    return json.dumps({"text": text}).encode()


def signature(secret: str, payload: bytes) -> str:
    """The ``X-Simfarm-Signature`` value: ``sha256=`` and the hex HMAC of the body."""
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify(secret: str, payload: bytes, header: str) -> bool:
    """What a receiver does: check the header against the raw body (constant time)."""
    return hmac.compare_digest(signature(secret, payload), header)


def email_message(sender: str, to: str, body: dict[str, Any]) -> EmailMessage:
    """The e-mail for a notification body."""
    title, details, link = _headline(body)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"simfarm: {title}"
    message.set_content("\n".join(p for p in (title, details, link,
                                               "", json.dumps(body, indent=2)) if p is not None))
    return message

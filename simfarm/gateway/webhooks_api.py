"""Webhooks: register where simfarm calls when your jobs end, see each delivery attempt
(``/api/v1/webhooks``), and a job's notification attempts (docs/notifications.md)."""

from __future__ import annotations

import re
import secrets
import time
import uuid

from flask import Blueprint, Response, jsonify

from simfarm.common.errors import JobNotFound
from simfarm.common.notify import Delivery, DeliveryLog, Webhook, WebhookCreated, WebhookIn
from simfarm.common.store.notify import NotifyStore
from simfarm.gateway.auth import can_see, current_user, require_visible
from simfarm.gateway.errors import ApiError
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.parsing import check_job_id, int_arg, parse_body
from simfarm.gateway.services import services

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1")
_HOOK = {"hook_id": "the webhook's id (`wh_...`)"}
_HOOK_ID = re.compile(r"^wh_[0-9a-f]{16}$")
MAX_PER_OWNER = 50


def _store() -> NotifyStore:
    svc = services()
    return NotifyStore(svc.redis, svc.settings.key_prefix)


def _mine(hook_id: str) -> Webhook:
    """The caller's webhook (another user's is 404, as for jobs)."""
    found = _store().webhook(hook_id) if _HOOK_ID.match(hook_id) else None
    if found is None or not can_see(found[0].owner):
        raise ApiError(404, "not_found", f"webhook {hook_id[:40]} not found")
    return found[0]


@bp.post("/webhooks")
@document(tags=["notifications"], body=WebhookIn,
          responses={201: Body(WebhookCreated, "registered; the secret is shown this once")},
          errors=(409, 422))
def create_webhook() -> tuple[Response, int]:
    """Register a webhook (or a ``mailto:`` address) called when your jobs end: those
    that name it in ``notify.webhooks``, or all of them with ``all_jobs``."""
    body = parse_body(WebhookIn)
    owner = current_user().user
    store = _store()
    if len(store.webhooks_of(owner)) >= MAX_PER_OWNER:
        raise ApiError(409, "conflict", f"at most {MAX_PER_OWNER} webhooks per user")
    secret = body.secret or secrets.token_urlsafe(32)
    hook = Webhook(id=f"wh_{uuid.uuid4().hex[:16]}", owner=owner, url=body.url,
                   template=body.template, all_jobs=body.all_jobs, events=body.events,
                   created_at=time.time())
    store.add_webhook(hook, secret)
    created = WebhookCreated(**hook.model_dump(), secret=secret)
    return jsonify(created.model_dump(mode="json")), 201


@bp.get("/webhooks")
@document(tags=["notifications"], responses={200: Body(list[Webhook], "your webhooks")})
def list_webhooks() -> Response:
    """Your webhooks (without their secrets)."""
    hooks = _store().webhooks_of(current_user().user)
    return jsonify([h.model_dump(mode="json") for h in hooks])


@bp.get("/webhooks/<hook_id>")
@document(tags=["notifications"], path_params=_HOOK, responses={200: Webhook}, errors=(404,))
def get_webhook(hook_id: str) -> Response:
    """One of your webhooks."""
    return jsonify(_mine(hook_id).model_dump(mode="json"))


@bp.delete("/webhooks/<hook_id>")
@document(tags=["notifications"], path_params=_HOOK,
          responses={204: "deleted; queued deliveries to it are dropped"}, errors=(404,))
def delete_webhook(hook_id: str) -> tuple[str, int]:
    """Delete one of your webhooks."""
    _store().delete_webhook(_mine(hook_id))
    return "", 204


@bp.get("/webhooks/<hook_id>/deliveries")
@document(tags=["notifications"], path_params=_HOOK,
          responses={200: Body(list[DeliveryLog], "newest first")}, errors=(404, 422))
def webhook_deliveries(hook_id: str) -> Response:
    """The webhook's latest delivery attempts (the last 200): what was sent, the
    receiver's status or the error, and whether more attempts follow."""
    hook = _mine(hook_id)
    limit = int_arg("limit", 200, 1, 200)
    return jsonify([e.model_dump(mode="json") for e in _store().webhook_log(hook.id, limit)])


@bp.post("/webhooks/<hook_id>/test")
@document(tags=["notifications"], path_params=_HOOK,
          responses={202: Body(DeliveryLog, "queued; see the deliveries for the outcome")},
          errors=(404,))
def test_webhook(hook_id: str) -> tuple[Response, int]:
    """Queue a ``ping`` delivery to the webhook now (to check the receiver and its
    signature check)."""
    hook = _mine(hook_id)
    svc = services()
    base = (svc.settings.url or "").rstrip("/")
    delivery = Delivery(id=f"d_{uuid.uuid4().hex[:20]}", target=hook.id, url=hook.url,
                        template=hook.template, event="ping", owner=hook.owner,
                        body={"event": "ping", "webhook": hook.id, "sent_at": time.time(),
                              "message": "simfarm can reach this webhook", "link": base})
    _store().enqueue([delivery], time.time())
    shown = DeliveryLog(delivery=delivery.id, target=hook.id, url=hook.url, event="ping",
                        attempt=0, at=time.time(), ok=False, final=False)
    return jsonify(shown.model_dump(mode="json")), 202


@bp.get("/jobs/<job_id>/notifications")
@document(tags=["notifications"], path_params={"job_id": "a job's or a sweep's id"},
          responses={200: Body(list[DeliveryLog], "newest first")}, errors=(404,))
def job_notifications(job_id: str) -> Response:
    """The notification attempts about one job (or sweep): every webhook and e-mail."""
    check_job_id(job_id)
    svc = services()
    try:
        require_visible(job_id)
    except JobNotFound:
        sweep = svc.sweeps.get(job_id, svc.jobs, children=False)
        if sweep is None or not can_see(sweep.owner):
            raise
    return jsonify([e.model_dump(mode="json") for e in _store().job_log(job_id)])

"""Delivers notifications (docs/notifications.md) in threads of its own, on the
dispatcher leader: a slow or failing receiver never delays a dispatch round, and the
job's state was recorded before anything here runs.

1. Jobs that ended and want notifications (queued by the store's Lua, see
   :mod:`simfarm.common.store.notify`) become deliveries: one per webhook named on the
   job or registered by its owner for all jobs, one per e-mail address. A sweep's
   children notify once, together, when the last of them ends.
2. Due deliveries are attempted by a small pool: an HTTP POST signed with the webhook's
   secret (``X-Simfarm-Signature: sha256=<HMAC-SHA256 of the body>``), or an e-mail.
   A 2xx answer delivers; anything else is retried with a doubling back-off up to
   ``notify_attempts`` attempts. Every attempt is logged for the owner.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from simfarm.common.errors import JobNotFound
from simfarm.common.models import Job
from simfarm.common.notify import (
    SIGNATURE_HEADER,
    Delivery,
    DeliveryLog,
    Webhook,
    email_message,
    job_summary,
    render,
    signature,
    sweep_summary,
)
from simfarm.common.store.notify import NotifyStore
from simfarm.common.store.sweeps import SweepStore
from simfarm.common.sweeps import sweep_state
from simfarm.workers.context import WorkerContext
from simfarm.workers.leader_thread import LeaderThread

log = logging.getLogger(__name__)
POLL_S = 0.25
SENDERS = 4
_FINAL = ("completed", "failed", "cancelled")


class Notifier(LeaderThread):
    """Turns ended jobs into deliveries and delivers them, while ``is_leader()``."""

    def __init__(self, ctx: WorkerContext, is_leader: Callable[[], bool]) -> None:
        super().__init__("notifier", ctx.node_name, is_leader, POLL_S)
        self.ctx = ctx
        self.store = NotifyStore(ctx.redis, ctx.settings.key_prefix)
        self.sweeps = SweepStore(ctx.redis, ctx.settings.key_prefix)
        settings = ctx.settings
        self.base_url = (settings.url or settings.gateway_url_for_workers()).rstrip("/")
        self.http = httpx.Client(timeout=httpx.Timeout(settings.notify_timeout_s,
                                                       connect=min(5.0, settings.notify_timeout_s)))
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="simfarm-notify-send")
        self._in_flight = 0  # attempts handed to the pool and not finished
        self._lock = threading.Lock()
        self._leading = False

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()

    def lead(self, now: float) -> None:
        if not self._leading:
            moved = self.store.recover_expanding()
            if moved:
                log.info("notifier: %d ended job(s) taken over from the last leader", moved)
            self._leading = True
        self.expand(now)
        self.send_due(time.time())

    def not_leading(self) -> None:
        self._leading = False

    def failed(self) -> None:
        self._leading = False  # what was being expanded goes back first

    # ------------------------------------------------------------------ expanding
    def expand(self, now: float) -> int:
        """Turn ended jobs into queued deliveries; returns how many were queued."""
        queued = 0
        for job_id in self.store.take_ended():
            try:
                job = self.ctx.jobs.get(job_id)
            except JobNotFound:  # expired meanwhile: nothing to say about it
                self.store.expanded(job_id)
                continue
            deliveries = (self._sweep_deliveries(job) if job.sweep_id
                          else self._job_deliveries(job))
            self.store.enqueue(deliveries, now)
            self.store.expanded(job_id)
            queued += len(deliveries)
            if deliveries:
                log.info("job %s: %d notification(s) queued", job.id, len(deliveries))
        return queued

    def _targets(self, job: Job, event: str) -> list[tuple[str, str, Webhook | None]]:
        """``(target, url, webhook)`` for an ending: the webhooks named on the job, then
        its owner's all-jobs webhooks, then e-mail addresses."""
        state = event.split(".", 1)[1]
        out: list[tuple[str, str, Webhook | None]] = []
        seen: set[str] = set()
        notify = job.spec.notify
        named = notify.webhooks if notify is not None else []
        for hook_id in named:
            found = self.store.webhook(hook_id)
            if found is None or (found[0].owner or None) != (job.owner or None):
                out.append((hook_id, "", None))  # logged as not delivered, with why
                seen.add(hook_id)
                continue
            if state in found[0].events:
                out.append((hook_id, found[0].url, found[0]))
            seen.add(hook_id)
        for hook in self.store.webhooks_of(job.owner):
            if hook.all_jobs and hook.id not in seen and state in hook.events:
                out.append((hook.id, hook.url, hook))
        for address in notify.email if notify is not None else []:
            out.append((f"email:{address}", f"mailto:{address}", None))
        return out

    def _deliveries(self, job: Job, event: str, body: dict[str, object],
                    sweep_id: str | None = None) -> list[Delivery]:
        return [Delivery(id=f"d_{uuid.uuid4().hex[:20]}", target=target, url=url,
                         template=hook.template if hook is not None else "simfarm",
                         event=event, job_id=None if sweep_id else job.id, sweep_id=sweep_id,
                         owner=job.owner, body=body)
                for target, url, hook in self._targets(job, event)]

    def _job_deliveries(self, job: Job) -> list[Delivery]:
        body = job_summary(job, self.base_url)
        return self._deliveries(job, str(body["event"]), body)

    def _sweep_deliveries(self, child: Job) -> list[Delivery]:
        """A sweep's children notify together, once, when the last one has ended."""
        sweep_id = child.sweep_id
        assert sweep_id is not None
        ended = self.store.sweep_child_ended(sweep_id)
        if ended < self.sweeps.child_count(sweep_id):
            return []
        sweep = self.sweeps.get(sweep_id, self.ctx.jobs, children=False)
        if sweep is None or sum(sweep.counts.get(s, 0) for s in _FINAL) < sweep.size:
            return []  # a child ran again: its new end is counted in turn
        if not self.store.claim_sweep(sweep_id):
            return []
        state = sweep_state(sweep.counts)
        body = sweep_summary(sweep, state, self.base_url)
        return self._deliveries(child, f"sweep.{state}", body, sweep_id=sweep_id)

    # ------------------------------------------------------------------ delivering
    def send_due(self, now: float) -> int:
        """Start due deliveries on the pool, no more than it can work on at once (the
        rest wait in Redis, not in memory); returns how many were started."""
        with self._lock:
            room = 2 * SENDERS - self._in_flight
        if room <= 0:
            return 0
        due = self.store.due(now, limit=room)
        settings = self.ctx.settings
        for delivery in due:
            self.store.hold(delivery.id, now + settings.notify_timeout_s + 60)
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._attempt_counted, delivery)
        return len(due)

    def _attempt_counted(self, delivery: Delivery) -> None:
        try:
            self._attempt(delivery)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _attempt(self, delivery: Delivery) -> None:
        settings = self.ctx.settings
        started = time.monotonic()
        delivery.attempts += 1
        try:
            status, error = self._send(delivery)
        except Exception as exc:  # a bug must not lose the delivery
            log.exception("notification %s: attempt failed", delivery.id)
            status, error = None, f"internal error: {exc}"
        ok = error is None
        final = ok or delivery.attempts >= settings.notify_attempts or status == -1
        entry = DeliveryLog(
            delivery=delivery.id, target=delivery.target, url=delivery.url,
            event=delivery.event, job_id=delivery.job_id, sweep_id=delivery.sweep_id,
            attempt=delivery.attempts, at=time.time(), ok=ok,
            status=status if status and status > 0 else None, error=error,
            duration_ms=int((time.monotonic() - started) * 1000), final=final)
        subject = delivery.job_id or delivery.sweep_id
        if final:
            self.store.finish(delivery.id)
            log.log(logging.INFO if ok else logging.WARNING, "%s %s: %s to %s %s",
                    "job" if delivery.job_id else "sweep", subject, delivery.event,
                    delivery.target, "delivered" if ok else f"given up: {error}")
        else:
            wait = min(settings.notify_backoff_max_s,
                       settings.notify_backoff_s * 2 ** (delivery.attempts - 1))
            self.store.retry(delivery, time.time() + wait)
            log.info("%s: %s to %s failed (%s); attempt %d in %.1f s", subject,
                     delivery.event, delivery.target, error, delivery.attempts + 1, wait)
        self.store.log(entry, settings.job_retention_s)

    def _send(self, delivery: Delivery) -> tuple[int | None, str | None]:
        """``(HTTP status, error)``; status -1 with an error that no retry can fix."""
        if not delivery.url:
            return -1, "not a webhook of the job's owner (deleted, or never registered)"
        if delivery.url.startswith("mailto:"):
            return self._mail(delivery)
        found = self.store.webhook(delivery.target)
        if found is None:
            return -1, "the webhook was deleted"
        payload = render(delivery.template, delivery.body)
        headers = {"Content-Type": "application/json", "User-Agent": "simfarm-notifier",
                   "X-Simfarm-Event": delivery.event, "X-Simfarm-Delivery": delivery.id,
                   SIGNATURE_HEADER: signature(found[1], payload)}
        try:
            response = self.http.post(delivery.url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    def _mail(self, delivery: Delivery) -> tuple[int | None, str | None]:
        settings = self.ctx.settings
        if not settings.smtp_host:
            return -1, "e-mail is not configured on the farm (smtp_host)"
        if delivery.target.startswith("wh_") and self.store.webhook(delivery.target) is None:
            return -1, "no such webhook of the job's owner (deleted, or never registered)"
        message = email_message(settings.smtp_from, delivery.url[7:], delivery.body)
        try:
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                              timeout=settings.notify_timeout_s) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls()
                if settings.smtp_user and settings.smtp_password:
                    smtp.login(settings.smtp_user, settings.smtp_password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            return None, f"SMTP: {exc}"[:500]
        return None, None

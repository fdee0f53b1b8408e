"""Webhooks and the notification queue in Redis (docs/notifications.md).

A job that ends and wants notifications is pushed onto ``notify:ended`` by the same Lua
script that records its end (lib.lua ``notify_ended``), so no ending is missed however
long the notifier is away. The notifier turns each into deliveries: a sorted set scored
by when each is due (the next attempt, after a back-off), with the delivery itself
beside it; it is removed only once delivered or given up, so a notifier that dies
mid-delivery leaves it to the next one (receivers may see a delivery twice: its
``X-Simfarm-Delivery`` id tells).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis

from simfarm.common.notify import Delivery, DeliveryLog, Webhook
from simfarm.common.store.keys import Keys

WEBHOOK_LOG = 200  # attempts kept per webhook
JOB_LOG = 50  # attempts kept per job


class NotifyStore:
    """Registered webhooks, the ended-jobs list, the delivery queue and the logs."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)

    # ------------------------------------------------------------------ webhooks
    def add_webhook(self, hook: Webhook, secret: str) -> None:
        """Register a webhook (with ``all_jobs``, its owner's every job now notifies)."""
        k = self.keys
        owner = hook.owner or ""
        pipe = self.connection.pipeline(transaction=True)
        pipe.hset(k.webhook(hook.id), mapping={"json": hook.model_dump_json(), "secret": secret})
        pipe.sadd(k.webhooks_of(owner), hook.id)
        if hook.all_jobs:
            pipe.sadd(k.notify_owners, owner)
        pipe.execute()

    def webhook(self, hook_id: str) -> tuple[Webhook, str] | None:
        """The webhook and its secret, or None."""
        raw = cast(list[bytes | None], self.connection.hmget(self.keys.webhook(hook_id),
                                                             ["json", "secret"]))
        if raw[0] is None or raw[1] is None:
            return None
        return Webhook.model_validate_json(raw[0]), raw[1].decode()

    def webhooks_of(self, owner: str | None) -> list[Webhook]:
        """An owner's webhooks, oldest first."""
        ids = sorted(i.decode() for i in cast(set[bytes], self.connection.smembers(
            self.keys.webhooks_of(owner or ""))))
        pipe = self.connection.pipeline(transaction=False)
        for hook_id in ids:
            pipe.hget(self.keys.webhook(hook_id), "json")
        hooks = [Webhook.model_validate_json(raw) for raw in pipe.execute() if raw]
        return sorted(hooks, key=lambda h: h.created_at)

    def delete_webhook(self, hook: Webhook) -> None:
        """Forget a webhook (its log goes too)."""
        k = self.keys
        owner = hook.owner or ""
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(k.webhook(hook.id), k.webhook_log(hook.id))
        pipe.srem(k.webhooks_of(owner), hook.id)
        pipe.execute()
        if hook.all_jobs and not any(h.all_jobs for h in self.webhooks_of(owner)):
            self.connection.srem(k.notify_owners, owner)

    # ------------------------------------------------------------------ ended jobs
    def take_ended(self, limit: int = 100) -> list[str]:
        """Move up to ``limit`` ended jobs to the "being expanded" list and return them."""
        k = self.keys
        out = []
        for _ in range(limit):
            raw = self.connection.lmove(k.notify_ended, k.notify_expanding, "LEFT", "RIGHT")
            if raw is None:
                break
            out.append(cast(bytes, raw).decode())
        return out

    def expanded(self, job_id: str) -> None:
        """The job's deliveries are queued: drop it from the "being expanded" list."""
        self.connection.lrem(self.keys.notify_expanding, 1, job_id)

    def recover_expanding(self) -> int:
        """Put back what a notifier that stopped mid-way was expanding (at start)."""
        k = self.keys
        moved = 0
        while self.connection.lmove(k.notify_expanding, k.notify_ended, "RIGHT", "LEFT"):
            moved += 1
        return moved

    def ended_backlog(self) -> int:
        """Jobs that ended and wait to be expanded into deliveries."""
        return int(self.connection.llen(self.keys.notify_ended))

    def sweep_child_ended(self, sweep_id: str) -> int:
        """Count one more ended child of a notifying sweep; returns the count."""
        return int(self.connection.hincrby(self.keys.notify_sweep(sweep_id), "ended", 1))

    def claim_sweep(self, sweep_id: str) -> bool:
        """True for the one caller that gets to notify the sweep's end."""
        return bool(self.connection.hsetnx(self.keys.notify_sweep(sweep_id), "notified", "1"))

    # ------------------------------------------------------------------ deliveries
    def enqueue(self, deliveries: Sequence[Delivery], due: float) -> None:
        """Queue deliveries, first attempt at ``due``."""
        if not deliveries:
            return
        k = self.keys
        pipe = self.connection.pipeline(transaction=True)
        for d in deliveries:
            pipe.set(k.delivery(d.id), d.model_dump_json())
            pipe.zadd(k.notify_queue, {d.id: due})
        pipe.execute()

    def due(self, now: float, limit: int = 20) -> list[Delivery]:
        """Deliveries whose attempt is due, earliest first."""
        k = self.keys
        ids = cast(list[bytes], self.connection.zrangebyscore(k.notify_queue, "-inf", now,
                                                              start=0, num=limit))
        if not ids:
            return []
        raw = cast(list[bytes | None], self.connection.mget([k.delivery(i.decode()) for i in ids]))
        out = []
        for delivery_id, data in zip(ids, raw, strict=True):
            if data is None:  # vanished: drop its queue entry
                self.connection.zrem(k.notify_queue, delivery_id)
                continue
            out.append(Delivery.model_validate_json(data))
        return out

    def hold(self, delivery_id: str, until: float) -> None:
        """Keep a delivery out of :meth:`due` while it is attempted (a notifier that dies
        mid-attempt leaves it to be tried again after ``until``)."""
        self.connection.zadd(self.keys.notify_queue, {delivery_id: until}, xx=True)

    def retry(self, delivery: Delivery, due: float) -> None:
        """Record an attempt that failed; the next one is due at ``due``."""
        k = self.keys
        pipe = self.connection.pipeline(transaction=True)
        pipe.set(k.delivery(delivery.id), delivery.model_dump_json())
        pipe.zadd(k.notify_queue, {delivery.id: due})
        pipe.execute()

    def finish(self, delivery_id: str) -> None:
        """Delivered, or given up: out of the queue."""
        k = self.keys
        pipe = self.connection.pipeline(transaction=True)
        pipe.zrem(k.notify_queue, delivery_id)
        pipe.delete(k.delivery(delivery_id))
        pipe.execute()

    def queued(self) -> int:
        """Deliveries waiting for an attempt."""
        return int(self.connection.zcard(self.keys.notify_queue))

    # ------------------------------------------------------------------ logs
    def log(self, entry: DeliveryLog, job_log_ttl_s: float) -> None:
        """Record one attempt in its webhook's log and its job's (both capped)."""
        k = self.keys
        data = entry.model_dump_json()
        pipe = self.connection.pipeline(transaction=False)
        if entry.target.startswith("wh_"):
            pipe.lpush(k.webhook_log(entry.target), data)
            pipe.ltrim(k.webhook_log(entry.target), 0, WEBHOOK_LOG - 1)
        for subject in (entry.job_id, entry.sweep_id):
            if subject:
                pipe.lpush(k.notify_job_log(subject), data)
                pipe.ltrim(k.notify_job_log(subject), 0, JOB_LOG - 1)
                pipe.expire(k.notify_job_log(subject), int(job_log_ttl_s))
        pipe.execute()

    def webhook_log(self, hook_id: str, limit: int = WEBHOOK_LOG) -> list[DeliveryLog]:
        """A webhook's latest attempts, newest first."""
        raw = cast(list[bytes], self.connection.lrange(self.keys.webhook_log(hook_id), 0,
                                                       limit - 1))
        return [DeliveryLog.model_validate_json(r) for r in raw]

    def job_log(self, job_id: str) -> list[DeliveryLog]:
        """The notification attempts about one job or sweep, newest first."""
        raw = cast(list[bytes], self.connection.lrange(self.keys.notify_job_log(job_id), 0, -1))
        return [DeliveryLog.model_validate_json(r) for r in raw]

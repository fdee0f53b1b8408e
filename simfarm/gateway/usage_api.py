"""``GET /api/v1/usage``: who used how many core-hours, from the per-day usage roll-ups
(docs/operations.md#usage-accounting). Admins see every row; a user only their own."""

from __future__ import annotations

import time
from typing import cast

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.store.usage import UsageStore
from simfarm.common.usage import (
    BUCKETS,
    DIMENSIONS,
    Bucket,
    Dimension,
    UsageReport,
    combine,
    day_date,
    day_of,
    parse_when,
)
from simfarm.gateway.auth import current_user
from simfarm.gateway.errors import field_error
from simfarm.gateway.openapi import document
from simfarm.gateway.services import services

bp = Blueprint("usage", __name__, url_prefix="/api/v1")
DEFAULT_SINCE = "30d"
MAX_DAYS = 36_600  # a range longer than this (a century) is a mistake


class UsageQuery(BaseModel):
    """Query parameters of ``GET /api/v1/usage`` (documentation: the route parses them
    itself, answering 400 with the field and reason)."""

    model_config = ConfigDict(extra="forbid")

    by: Dimension = Field(default="account", description="rows per `user`, `account` or "
                          "`node`")
    since: str = Field(default=DEFAULT_SINCE, description=(
        "start: `30d`, `12h`, `2w` (that long ago), epoch seconds, a negative number "
        "(seconds ago) or an ISO date (`2026-11-01`, UTC); whole UTC days are reported"))
    until: str | None = Field(default=None, description="end, as `since` (default now); "
                              "its whole day is included")
    bucket: Bucket = Field(default="total", description="one row per `day`, per `month` "
                           "(starting on its first day) or for the whole range (`total`)")


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.args.get(name) or default
    if value not in choices:
        raise field_error(name, f"must be one of {', '.join(choices)}", 400)
    return value


def _instant(name: str, default: str, now: float) -> float:
    try:
        return parse_when(request.args.get(name) or default, now)
    except ValueError as exc:
        raise field_error(name, str(exc), 400) from None


@bp.get("/usage")
@document(tags=["accounts"], query=UsageQuery, responses={200: UsageReport}, errors=(400,))
def usage_report() -> Response:
    """Usage per user, account or node: attempts, core-seconds (and core-hours), run and
    waiting time, how attempts ended, licence-seconds; per day, per month or in total.

    Every attempt that ended (completed, failed, cancelled, timed out, lost with its
    worker, requeued) is counted once, on the UTC days its run covered. Reads one
    roll-up per day, whatever the number of jobs. Admins see every row; anyone else
    only their own usage (by account or node: theirs in each)."""
    unknown = sorted(set(request.args) - set(UsageQuery.model_fields))
    if unknown:
        raise field_error(unknown[0], "unknown parameter; known: "
                          + ", ".join(UsageQuery.model_fields), 400)
    by = cast(Dimension, _choice("by", "account", DIMENSIONS))
    bucket = cast(Bucket, _choice("bucket", "total", BUCKETS))
    now = time.time()
    first = day_of(_instant("since", DEFAULT_SINCE, now))
    last = day_of(_instant("until", repr(now), now))
    if first > last:
        raise field_error("since", "must not be after until", 400)
    if last - first > MAX_DAYS:
        raise field_error("since", f"the range may cover at most {MAX_DAYS} days", 400)
    svc = services()
    caller = current_user()
    user = None if caller.admin else (caller.user or "-")
    rows, total = combine(UsageStore(svc.redis, svc.settings.key_prefix)
                          .rows(by, first, last, user), bucket)
    report = UsageReport(by=by, bucket=bucket, since=day_date(first).isoformat(),
                         until=day_date(last).isoformat(), scope=user or "all", rows=rows,
                         total=total)
    return jsonify(report.model_dump(mode="json"))

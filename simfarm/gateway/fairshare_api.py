"""``GET /api/v1/fairshare``: where each account and user stands against its share
(:mod:`simfarm.common.fairshare`), from the usage the dispatcher leader stores."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field

from simfarm.common.fairshare import Standing, decayed, standings
from simfarm.common.store.fairshare import FairShareStore
from simfarm.gateway.openapi import document
from simfarm.gateway.services import services

bp = Blueprint("fairshare", __name__, url_prefix="/api/v1")


class StandingOut(BaseModel):
    """One account (``user`` null) or one user in an account."""

    account: str
    user: str | None = Field(description="null for the account as a whole")
    shares: float = Field(description="configured shares (the account's, or the user's "
                          "inside the account)")
    share: float = Field(description="its fraction of the farm (0..1)")
    usage_core_s: float = Field(description="decayed usage: core-seconds plus licence-seconds "
                                "of the farm's pools, halved every half-life")
    used: float = Field(description="its fraction of everyone's decayed usage (0..1)")
    factor: float = Field(description="fair-share factor 2^(-used/share): 1 unused, 0.5 at "
                          "its share, towards 0 above it; higher goes first")
    over: str | None = Field(description="in words, when it is over its share")

    @classmethod
    def of(cls, s: Standing) -> StandingOut:
        """The API's view of a standing."""
        return cls(account=s.account, user=s.user, shares=s.shares, share=s.share,
                   usage_core_s=round(s.usage, 3), used=s.used, factor=s.factor,
                   over=s.over_text())


class FairShareOut(BaseModel):
    """Every account's and user's standing."""

    as_of: float | None = Field(description="when the dispatcher last counted the usage "
                                "(Unix seconds; null: nothing counted yet)")
    half_life_s: float = Field(description="usage counts half after this long")
    weight_s: float = Field(description="seconds of waiting a factor of 1 is worth in the "
                            "dispatch order (docs/scheduling.md)")
    accounts: list[StandingOut]
    users: list[StandingOut]


@bp.get("/fairshare")
@document(tags=["accounts"], responses={200: FairShareOut})
def fairshare() -> Response:
    """Fair share: each account's and user's share, decayed usage and factor.

    Usage is what the dispatcher leader counted (it stores it every second while jobs
    run), decayed to now. Users appear once they have used the farm.
    """
    svc = services()
    settings = svc.settings
    at, usage = FairShareStore(svc.redis, settings.key_prefix).load()
    now = time.time()
    if at is not None:
        usage = {who: decayed(v, now - at, settings.fairshare_half_life_s)
                 for who, v in usage.items()}
    accounts, users = standings(svc.accounts.accounts, usage)
    body = FairShareOut(
        as_of=at, half_life_s=settings.fairshare_half_life_s,
        weight_s=settings.dispatch_fairshare_s,
        accounts=[StandingOut.of(s) for s in accounts.values()],
        users=[StandingOut.of(users[w]) for w in sorted(users)])
    return jsonify(body.model_dump(mode="json"))

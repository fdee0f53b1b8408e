"""REST route for the farm's floating licence pools: ``GET /api/v1/licenses``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from simfarm.common.license_pools import LicenseStatus
from simfarm.gateway.openapi import document
from simfarm.gateway.services import Services, services

bp = Blueprint("licenses", __name__, url_prefix="/api/v1")


class LicenseListOut(BaseModel):
    """Every licence pool of the farm, in the order of the configuration."""

    licenses: list[LicenseStatus]


def pool_statuses(svc: Services) -> list[LicenseStatus]:
    """Each configured pool as the dispatcher leader last published it (or, before any
    leader did, its configured count with nothing handed out yet)."""
    published = svc.licenses.statuses() if svc.settings.licenses else {}
    out = []
    for pool in svc.settings.licenses:
        status = published.get(pool.name)
        if status is None:
            status = LicenseStatus(name=pool.name, count=pool.count, server=pool.server,
                                   feature=pool.vendor_feature, limit=0,
                                   poll_status="not published yet: no dispatcher leads")
        out.append(status)
    return out


@bp.get("/licenses")
@document(tags=["licenses"], responses={200: LicenseListOut})
def list_licenses() -> Response:
    """The farm's floating licence pools: per pool its configured count, what farm jobs
    may hold now (limit) and hold, what is in use outside the farm, what is free, how
    many pending jobs wait for it, the last poll of its FlexLM server and any warning
    (docs/licences.md)."""
    body = LicenseListOut(licenses=pool_statuses(services()))
    return jsonify(body.model_dump(mode="json"))

"""What the gateway's request handlers share: settings, Redis and the stores."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from simfarm.common import redis_url
from simfarm.common.accounts import AccountBook
from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from simfarm.common.store.audit import AuditStore
from simfarm.common.store.blobs import BlobIndex
from simfarm.common.store.gates import GateStore
from simfarm.common.store.licenses import LicenseStore
from simfarm.common.store.replication import ReplicationBarrier
from simfarm.common.store.sweeps import SweepStore
from simfarm.gateway.blobstore import FolderBlobStore
from simfarm.gateway.fit import NodeCapacities


@dataclass
class Services:
    """The gateway's connections, created once per app."""

    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    nodes: NodeStore
    gates: GateStore
    sweeps: SweepStore
    blobs: FolderBlobStore
    blob_index: BlobIndex
    audit: AuditStore
    capacities: NodeCapacities  # the nodes' total capacities, for the fit rule at submit
    licenses: LicenseStore  # the farm's floating licence pools
    replication: ReplicationBarrier  # submits wait for replicas (settings.wait_replicas)
    accounts: AccountBook  # who may charge which account


def build_services(settings: Settings, connection: redis.Redis | None = None) -> Services:
    """Connect to Redis and build the stores."""
    if connection is None:
        connection = redis_url.connect(
            settings.require_redis_url(),
            health_check_interval=30,
            socket_timeout=90,
            max_connections=settings.gateway_threads * 2 + 16,
        )
    nodes = NodeStore(connection, settings.key_prefix)
    return Services(
        settings=settings,
        redis=connection,
        jobs=JobStore.for_settings(connection, settings),
        nodes=nodes,
        gates=GateStore.for_settings(connection, settings),
        sweeps=SweepStore(connection, settings.key_prefix),
        blobs=FolderBlobStore(settings.blob_root(), settings.blob_min_free_bytes),
        blob_index=BlobIndex(connection, settings.key_prefix),
        audit=AuditStore(connection, settings.key_prefix),
        capacities=NodeCapacities(nodes),
        licenses=LicenseStore(connection, settings.key_prefix),
        replication=ReplicationBarrier(connection, nodes.keys, settings.wait_replicas(),
                                       settings.redis_wait_timeout_ms),
        accounts=settings.account_book(),
    )


def services() -> Services:
    """The services of the current app."""
    svc: Services = current_app.extensions["simfarm"]
    return svc

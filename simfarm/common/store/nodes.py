"""The node registry: which workers exist, what they have, whether they are alive."""

from __future__ import annotations

import time
from typing import cast

import redis

from simfarm.common.limits import NodeLimits
from simfarm.common.models import NodeDrain, NodeInfo
from simfarm.common.store.keys import Keys


class NodeStore:
    """Registers worker nodes and their heartbeats in Redis."""

    def __init__(self, connection: redis.Redis, prefix: str = "simfarm:") -> None:
        self.connection = connection
        self.keys = Keys(prefix)
        self._placed_as: dict[str, tuple[object, ...]] = {}

    def heartbeat(self, node: NodeInfo, ttl_s: float) -> None:
        """Register or refresh a node; it counts as alive for ``ttl_s`` seconds. When what
        placement depends on changed since this store's last beat for the node (capacity,
        labels, licences, slots, hold, boot), the node version is bumped."""
        node = node.model_copy(update={"last_seen": time.time()})
        payload = node.model_dump_json(exclude={"jobs", "alive", "drain"})
        placed_as = (node.cores_total, node.memory_mb_total, node.disk_mb_total,
                     tuple(sorted(node.labels.items())), tuple(sorted(node.licenses.items())),
                     node.max_jobs, node.held_reason, node.boot_id, node.queue)
        pipe = self.connection.pipeline(transaction=True)
        pipe.sadd(self.keys.nodes, node.name)
        pipe.hset(self.keys.node(node.name), mapping={"info": payload})
        pipe.set(self.keys.node_alive(node.name), "1", px=int(ttl_s * 1000))
        if self._placed_as.get(node.name) != placed_as:
            pipe.incr(self.keys.nodes_version)
        pipe.execute()
        self._placed_as[node.name] = placed_as

    def version(self) -> int:
        """Bumped whenever a node joins, leaves cleanly, or changes what placement depends
        on (a node that dies silently only stops being alive: poll for that too)."""
        return int(cast(bytes | None, self.connection.get(self.keys.nodes_version)) or 0)

    def remove(self, name: str) -> None:
        """Mark a node as gone now (clean shutdown)."""
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(self.keys.node_alive(name))
        pipe.incr(self.keys.nodes_version)
        pipe.execute()
        self._placed_as.pop(name, None)

    def forget(self, name: str) -> None:
        """Delete a node from the registry entirely."""
        pipe = self.connection.pipeline(transaction=True)
        pipe.srem(self.keys.nodes, name)
        pipe.delete(self.keys.node(name), self.keys.node_alive(name), self.keys.node_limits(name),
                    self.keys.node_drain(name))
        pipe.incr(self.keys.nodes_version)
        pipe.execute()

    def names(self) -> list[str]:
        """Names of every registered node, alive or not."""
        return sorted(
            n.decode() for n in cast(set[bytes], self.connection.smembers(self.keys.nodes))
        )

    def is_alive(self, name: str) -> bool:
        """Whether the node's heartbeat is current."""
        return bool(self.connection.exists(self.keys.node_alive(name)))

    def get(self, name: str) -> NodeInfo | None:
        """One node with its current jobs and liveness, or None."""
        nodes = self._load([name])
        return nodes[0] if nodes else None

    def all(self) -> list[NodeInfo]:
        """Every registered node with its current jobs and liveness."""
        return self._load(self.names())

    def _load(self, names: list[str]) -> list[NodeInfo]:
        pipe = self.connection.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys.node(name), "info")
            pipe.exists(self.keys.node_alive(name))
            pipe.smembers(self.keys.node_jobs(name))
            pipe.get(self.keys.node_limits(name))
            pipe.get(self.keys.node_drain(name))
        raw = pipe.execute()
        out: list[NodeInfo] = []
        for i in range(0, len(raw), 5):
            info, alive, jobs, limits, drain = raw[i : i + 5]
            if not info:
                continue
            node = NodeInfo.model_validate_json(info)
            node.alive = bool(alive)
            node.jobs = sorted(j.decode() for j in jobs)
            if limits:
                node.limits = NodeLimits.model_validate_json(limits).model_dump()
            if drain:
                node.drain = NodeDrain.model_validate_json(drain)
            out.append(node)
        return out

    def limits(self, name: str) -> NodeLimits | None:
        """The node's local limits as last set through the API, or None if never set."""
        raw = self.connection.get(self.keys.node_limits(name))
        return NodeLimits.model_validate_json(cast(bytes, raw)) if raw else None

    def set_limits(self, name: str, limits: NodeLimits) -> None:
        """Store a node's local limits (its worker applies them at the next heartbeat)."""
        pipe = self.connection.pipeline(transaction=True)
        pipe.set(self.keys.node_limits(name), limits.model_dump_json())
        pipe.incr(self.keys.nodes_version)
        pipe.execute()

    def set_drain(self, name: str, drain: NodeDrain | None) -> None:
        """Drain a node (it takes no new jobs from the next dispatch round on), or with
        None resume it. Kept across worker restarts until resumed."""
        pipe = self.connection.pipeline(transaction=True)
        if drain is None:
            pipe.delete(self.keys.node_drain(name))
        else:
            pipe.set(self.keys.node_drain(name), drain.model_dump_json())
        pipe.incr(self.keys.nodes_version)
        pipe.execute()

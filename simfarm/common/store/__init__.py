"""Redis-backed stores: the only code in simfarm that knows Redis keys."""

from simfarm.common.store.jobs import JobStore, new_job_id
from simfarm.common.store.keys import Keys
from simfarm.common.store.nodes import NodeStore

__all__ = ["JobStore", "Keys", "NodeStore", "new_job_id"]

"""Which runner runs each kind of job on this worker: chosen once, when the worker starts.

A worker without a scheduler runs command jobs as local processes and HFSS jobs with the
local ``ansysedt``; a worker attached to a cluster forwards every kind to the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simfarm.workers.attempt import Runner
from simfarm.workers.cluster_runner import run_on_cluster
from simfarm.workers.hfss_runner import run_hfss
from simfarm.workers.local_runner import run_local

if TYPE_CHECKING:
    from simfarm.workers.cluster_service import ClusterService


@dataclass(frozen=True)
class RunnerTable:
    """The runner of each job kind. A runner that starts itself (cluster runners) gets
    the attempt while the job is still ``scheduled`` and moves it to ``running`` when
    the job really starts."""

    runners: Mapping[str, Runner]
    self_starting: frozenset[str] = field(default_factory=frozenset)

    def runner_for(self, kind: str) -> Runner | None:
        return self.runners.get(kind)

    def starts_itself(self, kind: str) -> bool:
        return kind in self.self_starting


def runner_table(cluster: ClusterService | None) -> RunnerTable:
    """The runners of a worker attached to ``cluster`` (None: jobs run on this machine)."""
    if cluster is not None:
        kinds = ("command", "hfss")
        return RunnerTable(dict.fromkeys(kinds, run_on_cluster), frozenset(kinds))
    return RunnerTable({"command": run_local, "hfss": run_hfss})

"""Microsoft HPC Pack (Windows HPC): the ``job`` and ``node`` command-line tools.

Submission is ``job new`` (job-level resources) → ``job add`` (one task running the
script) → ``job submit``; status is one ``job list /all /jobname:simfarm-* /format:list``
for every watched job; cancel is ``job cancel``; partitions are node groups from
``node list`` plus per-core states from ``node listcores``.
References: https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/hpc-server-2012-R2-and-2012/cc972848(v=ws.11)
(job subcommands), .../cc972902 (job list), JobState values
https://learn.microsoft.com/en-us/previous-versions/windows/desktop/cc907044(v=vs.85).

``config.extra["node_os"]``: ``"windows"`` (default) renders a PowerShell script run
with ``powershell -File``; ``"linux"`` renders a bash script, for HPC Pack clusters
with Linux compute nodes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simfarm.workers.schedulers.base import BackendConfig, ClusterBackend
from simfarm.workers.schedulers.commands import CommandResult
from simfarm.workers.schedulers.errors import CommandError
from simfarm.workers.schedulers.options import ClusterOptions
from simfarm.workers.schedulers.timefmt import hpc_runtime
from simfarm.workers.schedulers.types import (
    ClusterJobRequest,
    ClusterState,
    ClusterStatus,
    Partition,
)

Q, R = ClusterState.QUEUED, ClusterState.RUNNING
_STATE_MAP: dict[str, ClusterState] = {
    "Configuring": Q, "Submitted": Q, "Validating": Q, "ExternalValidation": Q, "Queued": Q,
    "Running": R, "Finishing": R, "Canceling": R,
    "Finished": ClusterState.COMPLETED, "Failed": ClusterState.FAILED,
    "Canceled": ClusterState.CANCELLED,
}
_CREATED = re.compile(r"Created job, ID:\s*(\d+)")
_TIME_LIMIT = re.compile(r"run ?time|time limit", re.IGNORECASE)
_TRANSIENT = ("Unable to connect", "could not connect", "The scheduler is unavailable",
              "timed out", "Service Unavailable")
_BUSY_CORE_STATES = ("JobScheduled", "ReadyForTask", "TaskRunning", "TaskScheduled")


def parse_list_format(text: str) -> list[dict[str, str]]:
    """Records of ``/format:list`` output: ``Property : value`` lines, blank-line separated."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
                current = {}
            continue
        if " : " not in line and not line.rstrip().endswith(":"):
            raise CommandError(f"unexpected HPC Pack list line {line!r}")
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if current:
        records.append(current)
    return records


class WinHpcBackend(ClusterBackend):
    """Forward jobs to a Microsoft HPC Pack cluster."""

    kind = "winhpc"
    native_id_expr = '"${CCP_JOBID:?}"'
    transient_submit_errors = _TRANSIENT
    directives = False  # resources go on `job new`'s command line

    def __init__(self, config: BackendConfig | None = None) -> None:
        super().__init__(config)
        self.node_os = self.config.choice("node_os", ("windows", "linux"))
        self.script_suffix = ".ps1" if self.node_os == "windows" else ".sh"

    def format_time(self, seconds: int) -> str:
        return hpc_runtime(seconds)

    def job_new_command(self, request: ClusterJobRequest, options: ClusterOptions) -> list[str]:
        """``job new`` with the job-level resources."""
        argv = ["job", "new", f"/jobname:{self.job_name(request)}",
                f"/priority:{options.priority}"]
        if options.nodes > 1:
            argv.append(f"/numnodes:{options.nodes}")
        else:
            argv.append(f"/numcores:{options.total_cores}")
        if options.time_limit_s:
            argv.append(f"/runtime:{self.format_time(options.time_limit_s)}")
        if options.queue:
            argv.append(f"/nodegroup:{options.queue}")
        if options.account:
            argv.append(f"/projectname:{options.account}")
        if options.memory_mb:
            argv.append(f"/memorypernode:{options.memory_mb}")
        if options.exclusive:
            argv.append("/exclusive:true")
        if request.licenses:
            argv.append("/license:" + ",".join(f"{name}:{count}" for name, count
                                               in sorted(request.licenses.items())))
        if options.email:
            argv += [f"/emailaddress:{options.email}", "/notifyoncompletion:true"]
        return argv

    def task_command(self, script: Path) -> list[str]:
        """The command line of the job's single task."""
        if self.node_os == "windows":
            return ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy",
                    "Bypass", "-File", str(script)]
        return ["/bin/bash", str(script)]

    def get_submit_command(self, script: Path, request: ClusterJobRequest,
                           options: ClusterOptions) -> tuple[list[str], Path | None]:
        return self.job_new_command(request, options), None

    def job_id_from_submit_output(self, out: str) -> str:
        match = _CREATED.search(out)
        if not match:
            raise ValueError(out)
        return match.group(1)

    def _submit_once(self, script: Path, request: ClusterJobRequest,
                     options: ClusterOptions) -> str:
        native_id = super()._submit_once(script, request, options)
        log_path = request.job_dir / f"{request.job_id}.winhpc.log"
        steps = [
            ["job", "add", native_id, "/name:simfarm", f"/workdir:{request.job_dir}",
             f"/stdout:{log_path}", f"/stderr:{log_path}", *self.task_command(script)],
            ["job", "submit", f"/id:{native_id}"],
        ]
        for argv in steps:
            try:
                result = self.runner.run(argv)
            except CommandError:
                self._discard(native_id)
                raise
            if not result.ok:
                self._discard(native_id)
                text = result.stdout + result.stderr
                raise result.error(f"{argv[1]} failed", transient=self.transient(text))
        return native_id

    def _discard(self, native_id: str) -> None:
        try:
            self.runner.run(["job", "cancel", native_id])
        except CommandError:
            pass

    def find_submitted(self, request: ClusterJobRequest) -> str | None:
        result = self.runner.run(["job", "list", "/all", f"/jobname:{self.job_name(request)}",
                                  "/format:list"])
        if not result.ok:
            return None
        for record in parse_list_format(result.stdout):
            if record.get("State") != "Configuring" and record.get("Id"):
                return record["Id"]
        return None

    def get_status_command(self, native_ids: Sequence[str]) -> list[str]:
        # `job list` cannot filter by id; all simfarm jobs share the name prefix.
        return ["job", "list", "/all", "/jobname:simfarm-*", "/format:list"]

    def parse_status_output(self, result: CommandResult,
                            native_ids: Sequence[str]) -> dict[str, ClusterStatus | None]:
        if not result.ok:
            raise result.error("job list failed")
        wanted = set(native_ids)
        out: dict[str, ClusterStatus | None] = {}
        for record in parse_list_format(result.stdout):
            native_id = record.get("Id", "")
            if native_id in wanted:
                out[native_id] = self._status(record)
        return out

    def _status(self, record: dict[str, str]) -> ClusterStatus | None:
        word = record.get("State", "")
        state = _STATE_MAP.get(word)
        if state is None:
            return None
        message = record.get("ErrorMessage") or None
        if state in (ClusterState.CANCELLED, ClusterState.FAILED) and message \
                and _TIME_LIMIT.search(message):
            return ClusterStatus(ClusterState.FAILED, word, f"TIMEOUT: {message}", None,
                                 "job list")
        if state is ClusterState.FAILED:
            return ClusterStatus(state, word, message or "Failed", None, "job list")
        return ClusterStatus(state, word, message if state is Q else None, None, "job list")

    def get_cancel_command(self, native_id: str) -> list[str]:
        return ["job", "cancel", native_id]

    def cancel_already_done(self, result: CommandResult) -> bool:
        text = result.stdout + result.stderr
        return "cannot be canceled" in text or "does not exist" in text

    def get_partitions_commands(self) -> list[list[str]]:
        return [["node", "list", "/format:list"], ["node", "listcores", "/format:list"]]

    def parse_partitions(self, results: Sequence[CommandResult]) -> list[Partition]:
        nodes = parse_list_format(results[0].stdout)
        cores = parse_list_format(results[1].stdout)
        busy: dict[str, int] = {}
        for core in cores:
            if core.get("State") in _BUSY_CORE_STATES:
                busy[core.get("NodeName", "")] = busy.get(core.get("NodeName", ""), 0) + 1
        groups: dict[str, dict[str, Any]] = {}
        for node in nodes:
            name = node.get("Name") or node.get("NodeName", "")
            online = node.get("State") == "Online"
            total = int(node.get("NumberOfCores", "0") or 0)
            used = total if not online else min(total, busy.get(name, 0))
            for group in (g.strip() for g in node.get("NodeGroups", "").split(",")):
                if not group:
                    continue
                entry = groups.setdefault(group, {"nodes": 0, "busy": 0, "cores": 0,
                                                  "used": 0, "memory": 0})
                entry["nodes"] += 1
                entry["busy"] += 1 if used else 0
                entry["cores"] += total
                entry["used"] += used
                entry["memory"] = max(entry["memory"], int(node.get("MemorySize", "0") or 0))
        return [Partition(name, "up", e["nodes"], e["busy"], e["cores"], e["used"], e["memory"],
                          default=name == "ComputeNodes") for name, e in groups.items()]

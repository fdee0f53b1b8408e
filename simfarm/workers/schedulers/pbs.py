"""PBS Professional / OpenPBS and Torque: ``qsub`` / ``qstat`` / ``qdel`` / ``pbsnodes``.

Two flavours (``config.extra["flavour"]``: ``"pro"``, ``"torque"`` or ``"auto"``):

* ``pro`` (PBS Pro, OpenPBS): status from ``qstat -f -F json -x <ids>`` (finished jobs
  stay listed with ``job_state`` F and ``Exit_status``), partitions from
  ``qstat -Q -f -F json`` and ``pbsnodes -a -F json``. Reference: Altair PBS
  Professional Reference Guide, "qstat" and "Job Exit Status" (``Exit_status`` < 0:
  PBS could not run or killed the job, -29 = JOB_EXEC_KILL_WALLTIME; >= 256: killed by
  signal ``Exit_status - 256``), and OpenPBS ``qstat(1B)``.
* ``torque`` (Torque, and SLURM's ``slurm-wlm-torque`` wrappers): status from
  ``qstat -f <ids>`` text (``job_state`` C = completed, ``exit_status`` when the server
  reports it, -11 = JOB_EXEC_OVERLIMIT_WT in Torque's ``job.h``), partitions from
  ``qstat -Q`` names and ``pbsnodes -a``. The SLURM wrappers report every ended job as
  C without an exit status, so the job's exit-code file decides.

``qstat`` exits 153 ("Unknown Job Id") when some ids are gone; that is an answer, not a
failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simfarm.workers.schedulers.base import BackendConfig, ClusterBackend
from simfarm.workers.schedulers.commands import CommandResult
from simfarm.workers.schedulers.errors import CommandError
from simfarm.workers.schedulers.options import ClusterOptions
from simfarm.workers.schedulers.types import (
    ClusterJobRequest,
    ClusterState,
    ClusterStatus,
    Partition,
)

Q, R = ClusterState.QUEUED, ClusterState.RUNNING
# PBS Pro Reference Guide "Job States"; Torque adds C (completed).
_STATE_MAP: dict[str, ClusterState] = {
    "Q": Q, "H": Q, "W": Q, "T": Q, "M": Q, "U": Q,
    "R": R, "E": R, "B": R, "S": R,
    "F": ClusterState.COMPLETED, "X": ClusterState.COMPLETED, "C": ClusterState.COMPLETED,
}
_UNKNOWN_ID = ("Unknown Job Id", "Job has finished")
_TRANSIENT = ("cannot connect to server", "Connection refused", "Problem loading jobs",
              "pbs_iff: cannot", "Communication failure", "Server busy",
              # SLURM's Torque wrappers pass sbatch's own complaints through.
              "Unable to contact slurm controller", "Socket timed out",
              "temporarily unable to accept job")
_WALLTIME = {"pro": -29, "torque": -11}
_PRIORITY = {"Low": -512, "BelowNormal": -256, "Normal": None, "AboveNormal": 256, "High": 512}
_SIZE = re.compile(r"^(\d+)(b|kb|mb|gb|tb)?$", re.IGNORECASE)


def _size_mb(text: object) -> int:
    match = _SIZE.match(str(text).strip())
    if not match:
        return 0
    factor = {"b": 1 / 2**20, "kb": 1 / 1024, "mb": 1, "gb": 1024, "tb": 2**20}
    return int(int(match.group(1)) * factor[(match.group(2) or "b").lower()])


def parse_qstat_full(text: str) -> dict[str, dict[str, str]]:
    """Records of ``qstat -f`` text: ``Job Id: X`` then indented ``key = value`` lines;
    PBS wraps long values onto tab-indented continuation lines."""
    records: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last_key = None
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if raw.startswith(("Job Id:", "Queue:")):
            current = records.setdefault(raw.split(":", 1)[1].strip(), {})
            last_key = None
        elif current is not None and " = " in raw:
            key, _, value = raw.strip().partition(" = ")
            current[key] = value
            last_key = key
        elif current is not None and last_key is not None and raw[:1] in ("\t", " "):
            current[last_key] += raw.strip()
        else:
            raise CommandError(f"unexpected qstat -f line {raw!r}")
    return records


def parse_qstat_table(text: str) -> dict[str, tuple[str, str]]:
    """``qstat``/``qstat -x`` summary table → {job id: (state letter, queue)}."""
    out: dict[str, tuple[str, str]] = {}
    lines = text.splitlines()
    for line in lines:
        cells = line.split()
        if not cells or cells[0] == "Job" or set(cells[0]) <= {"-"}:
            continue
        if len(cells) < 6:
            raise CommandError(f"unexpected qstat line {line!r}")
        out[cells[0]] = (cells[-2], cells[-1])
    return out


class PbsBackend(ClusterBackend):
    """Forward jobs to PBS Pro / OpenPBS or Torque (see module docstring)."""

    kind = "pbs"
    # The slurm-wlm-torque qsub does not set PBS_JOBID; SLURM's id equals the one
    # its qsub printed.
    native_id_expr = '"${PBS_JOBID:-${SLURM_JOB_ID:?}}"'
    transient_submit_errors = _TRANSIENT

    def __init__(self, config: BackendConfig | None = None) -> None:
        super().__init__(config)
        flavour = self.config.choice("flavour", ("auto", "pro", "torque"), "PBS flavour")
        self._flavour = None if flavour == "auto" else flavour

    @property
    def flavour(self) -> str:
        """``pro`` or ``torque``; detected once from ``qstat --version`` when auto."""
        if self._flavour is None:
            result = self.runner.run(["qstat", "--version"])
            self._flavour = "pro" if "pbs_version" in result.stdout + result.stderr else "torque"
        return self._flavour

    def script_context(self, request: ClusterJobRequest,
                       options: ClusterOptions) -> dict[str, Any]:
        ctx = super().script_context(request, options)
        ctx["flavour"] = self.flavour
        ctx["priority"] = _PRIORITY[options.priority]
        ctx["queue"] = options.queue
        if options.reservation and self.flavour == "pro":
            # PBS Pro runs reservation jobs from the reservation's own queue.
            ctx["queue"] = options.reservation
        select = f"{options.nodes}:ncpus={options.tasks_per_node * options.cpus_per_task}" \
                 f":mpiprocs={options.tasks_per_node}"
        if options.memory_mb:
            select += f":mem={options.memory_mb}mb"
        if options.gpus:
            select += f":ngpus={options.gpus}"
        ctx["select"] = select
        return ctx

    def get_submit_command(self, script: Path, request: ClusterJobRequest,
                           options: ClusterOptions) -> tuple[list[str], Path | None]:
        return ["qsub", str(script)], None

    def job_id_from_submit_output(self, out: str) -> str:
        tokens = out.split()
        if not tokens or not tokens[-1][:1].isdigit():
            raise ValueError(out)
        return tokens[-1]

    def get_status_command(self, native_ids: Sequence[str]) -> list[str]:
        if self.flavour == "pro":
            return ["qstat", "-f", "-F", "json", "-x", *native_ids]
        return ["qstat", "-f", *native_ids]

    def parse_status_output(self, result: CommandResult,
                            native_ids: Sequence[str]) -> dict[str, ClusterStatus | None]:
        if not result.ok:
            complaints = [line for line in result.stderr.splitlines() if line.strip()]
            if result.returncode != 153 or not all(
                    any(m in line for m in _UNKNOWN_ID) for line in complaints):
                raise result.error("qstat failed")
        if self.flavour == "pro":
            if not result.stdout.strip():
                return {}
            try:
                jobs = json.loads(result.stdout).get("Jobs", {})
            except (ValueError, AttributeError):
                raise result.error("qstat gave no usable JSON") from None
            records = {k: {key: v for key, v in rec.items()} for k, rec in jobs.items()}
        else:
            records = parse_qstat_full(result.stdout)
        out: dict[str, ClusterStatus | None] = {}
        for native_id in native_ids:
            record = records.get(native_id) or _by_number(records, native_id)
            if record is not None:
                out[native_id] = self._status(record)
        return out

    def _status(self, record: dict[str, Any]) -> ClusterStatus | None:
        word = str(record.get("job_state", ""))
        state = _STATE_MAP.get(word)
        if state is None:
            return None
        comment = str(record["comment"]) if record.get("comment") else None
        if not state.final:
            return ClusterStatus(state, word, comment if state is Q else None, None, "qstat")
        raw = record.get("Exit_status", record.get("exit_status"))
        if raw is None or str(raw).strip() == "":
            # Ended, but the server does not say how: the exit-code file decides.
            return ClusterStatus(ClusterState.FAILED, word, comment or "ended without an "
                                 "exit status", None, "qstat", tentative=True)
        status = int(str(raw))
        if status == 0:
            return ClusterStatus(ClusterState.COMPLETED, word, None, 0, "qstat")
        if status == _WALLTIME[self.flavour]:
            return ClusterStatus(ClusterState.FAILED, word, "TIMEOUT: walltime exceeded", None,
                                 "qstat")
        if status < 0:
            return ClusterStatus(ClusterState.FAILED, word, f"PBS could not run the job "
                                 f"(Exit_status {status})" + (f": {comment}" if comment else ""),
                                 None, "qstat")
        if status >= 256:
            signal = status - 256
            return ClusterStatus(ClusterState.FAILED, word, f"killed by signal {signal}",
                                 128 + signal, "qstat")
        return ClusterStatus(ClusterState.FAILED, word, f"exit code {status}", status, "qstat")

    def get_cancel_command(self, native_id: str) -> list[str]:
        return ["qdel", native_id]

    def cancel_already_done(self, result: CommandResult) -> bool:
        text = (result.stdout + result.stderr).strip()
        if any(m in text for m in (*_UNKNOWN_ID, "Request invalid for state of job",
                                   "job has finished")):
            return True
        # The slurm-wlm-torque qdel exits 1 silently for ended or unknown jobs.
        return self.flavour == "torque" and result.returncode == 1 and not text

    def get_partitions_commands(self) -> list[list[str]]:
        if self.flavour == "pro":
            return [["qstat", "-Q", "-f", "-F", "json"], ["pbsnodes", "-a", "-F", "json"]]
        return [["qstat", "-Q"], ["pbsnodes", "-a"]]

    def parse_partitions(self, results: Sequence[CommandResult]) -> list[Partition]:
        if self.flavour == "pro":
            try:
                queues = json.loads(results[0].stdout).get("Queue", {})
                nodes = json.loads(results[1].stdout).get("nodes", {})
            except (ValueError, AttributeError):
                raise CommandError("qstat -Q / pbsnodes gave no usable JSON") from None
            return _pro_partitions(queues, nodes)
        return _torque_partitions(results[0].stdout, results[1].stdout)


def _by_number(records: dict[str, Any], native_id: str) -> Any:
    """Match ``123`` with ``123.server`` (qstat may print the full name)."""
    number = native_id.split(".")[0]
    for key, record in records.items():
        if key.split(".")[0] == number:
            return record
    return None


def _pro_partitions(queues: dict[str, Any], nodes: dict[str, Any]) -> list[Partition]:
    out = []
    for name, queue in queues.items():
        if queue.get("queue_type", "Execution") != "Execution":
            continue
        # Nodes tied to a queue (node attribute "queue") serve only that queue; the
        # other queues share the untied nodes.
        members = [n for n in nodes.values() if n.get("queue") == name] or [
            n for n in nodes.values() if not n.get("queue")]
        cores = sum(int(n.get("resources_available", {}).get("ncpus", 0)) for n in members)
        used = sum(int(n.get("resources_assigned", {}).get("ncpus", 0)) for n in members)
        busy = sum(1 for n in members if str(n.get("state", "")) != "free")
        memory = max((_size_mb(n.get("resources_available", {}).get("mem", 0))
                      for n in members), default=0)
        up = str(queue.get("enabled")) == "True" and str(queue.get("started")) == "True"
        out.append(Partition(name, "up" if up else "down", len(members), busy, cores, used,
                             memory))
    return out


def _torque_partitions(queue_text: str, node_text: str) -> list[Partition]:
    names = []
    for line in queue_text.splitlines():
        cells = line.split()
        if cells and cells[0] not in ("Queue", "Server") and not set(cells[0]) <= {"-"}:
            names.append((cells[0], line))
    nodes = _pbsnodes_text(node_text)
    cores = sum(n["np"] for n in nodes)
    used = sum(n["used"] for n in nodes)
    busy = sum(1 for n in nodes if n["used"])
    memory = max((n["mem"] for n in nodes), default=0)
    return [Partition(name, "up" if " E R" in line or "yes   yes" in line else "unknown",
                      len(nodes), busy, cores, used, memory) for name, line in names]


def _pbsnodes_text(text: str) -> list[dict[str, int]]:
    nodes: list[dict[str, int]] = []
    attrs: dict[str, str] = {}

    def flush() -> None:
        if attrs:
            np = int(attrs.get("np", "0") or 0)
            state = attrs.get("state", "")
            jobs = [j for j in attrs.get("jobs", "").split(",") if j.strip()]
            if jobs:
                used = len(jobs)
            elif any(s in state for s in ("job-exclusive", "down", "offline", "allocated")):
                used = np
            else:
                used = 0
            mem = re.search(r"availmem=(\d+\w+)", attrs.get("status", ""))
            nodes.append({"np": np, "used": min(np, used),
                          "mem": _size_mb(mem.group(1)) if mem else 0})

    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[:1].isspace():
            flush()
            attrs = {}
        elif " = " in line:
            key, _, value = line.strip().partition(" = ")
            attrs[key] = value
    flush()
    return nodes

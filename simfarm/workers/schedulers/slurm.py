"""SLURM: ``sbatch`` / ``squeue`` / ``scancel`` / ``sinfo``, ``sacct`` for finished jobs.

Formats: https://slurm.schedmd.com/squeue.html (``-o`` fields, JOB STATE CODES,
JOB REASON CODES), https://slurm.schedmd.com/sacct.html (``-P``, ``ExitCode`` is
``code:signal``), https://slurm.schedmd.com/sinfo.html (``%C`` is
allocated/idle/other/total CPUs, ``%F`` the same for nodes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simfarm.workers.schedulers.base import BackendConfig, ClusterBackend
from simfarm.workers.schedulers.commands import CommandResult
from simfarm.workers.schedulers.errors import CommandError
from simfarm.workers.schedulers.options import ClusterOptions
from simfarm.workers.schedulers.timefmt import slurm_time
from simfarm.workers.schedulers.types import (
    ClusterJobRequest,
    ClusterState,
    ClusterStatus,
    Partition,
)

log = logging.getLogger(__name__)
Q, R, C, F, X = (ClusterState.QUEUED, ClusterState.RUNNING, ClusterState.COMPLETED,
                 ClusterState.FAILED, ClusterState.CANCELLED)
# squeue/sacct state words (squeue.html "JOB STATE CODES"). The word itself is kept as
# the native state; failed states keep it as the reason too.
_STATE_MAP: dict[str, ClusterState] = {
    "PENDING": Q, "CONFIGURING": Q, "REQUEUED": Q, "REQUEUE_FED": Q, "REQUEUE_HOLD": Q,
    "RESV_DEL_HOLD": Q, "SUSPENDED": R, "STOPPED": R, "RUNNING": R, "COMPLETING": R,
    "RESIZING": R, "SIGNALING": R, "STAGE_OUT": R,
    "COMPLETED": C,
    "FAILED": F, "TIMEOUT": F, "NODE_FAIL": F, "OUT_OF_MEMORY": F, "PREEMPTED": F,
    "BOOT_FAIL": F, "DEADLINE": F, "REVOKED": F, "SPECIAL_EXIT": F,
    "CANCELLED": X,
}
_TRANSIENT = ("Unable to contact slurm controller", "Socket timed out",
              "temporarily unable to accept job", "Resource temporarily unavailable",
              "Zero Bytes were transmitted or received", "Communication connection failure")
_GONE = ("Invalid job id specified", "already completing or completed",
         "Job/step already completing")


def _exit_code(text: str) -> int | None:
    """``code:signal`` → a shell-style exit code (128+signal when killed)."""
    code, _, signal = text.partition(":")
    try:
        number, sig = int(code), int(signal or 0)
    except ValueError:
        return None
    return 128 + sig if sig and not number else number


class SlurmBackend(ClusterBackend):
    """Forward jobs to SLURM.

    ``config.extra``: ``accounting`` (``"auto"`` tries ``sacct`` then, on clusters
    without slurmdbd, ``sacct --completion`` which reads the ``jobcomp/filetxt`` file;
    ``"none"`` relies on the exit-code file only).
    """

    kind = "slurm"
    native_id_expr = '"${SLURM_JOB_ID:?}"'
    transient_submit_errors = _TRANSIENT

    def format_time(self, seconds: int) -> str:
        return slurm_time(seconds)

    def script_context(self, request: ClusterJobRequest,
                       options: ClusterOptions) -> dict[str, Any]:
        ctx = super().script_context(request, options)
        ctx["nice"] = {"Low": 200, "BelowNormal": 100}.get(options.priority)
        return ctx

    def get_submit_command(self, script: Path, request: ClusterJobRequest,
                           options: ClusterOptions) -> tuple[list[str], Path | None]:
        return ["sbatch", "--parsable", str(script)], None

    def job_id_from_submit_output(self, out: str) -> str:
        # --parsable prints "<id>" or "<id>;<cluster>".
        first = out.strip().splitlines()[-1] if out.strip() else ""
        native_id = first.split(";")[0].strip()
        if not native_id.isdigit():
            raise ValueError(out)
        return native_id

    def find_submitted(self, request: ClusterJobRequest) -> str | None:
        result = self.runner.run(["squeue", "-h", "-n", self.job_name(request), "-o", "%i"])
        if not result.ok:
            raise result.error("squeue by name failed")
        ids = result.stdout.split()
        return ids[0] if ids else None

    def get_status_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["squeue", "-h", "-t", "all", "-j", ",".join(native_ids), "-o", "%i|%T|%r"]

    def parse_status_output(self, result: CommandResult,
                            native_ids: Sequence[str]) -> dict[str, ClusterStatus | None]:
        if not result.ok:
            if "Invalid job id specified" in result.stderr:
                return {}  # none of the ids is known any more (older squeue)
            raise result.error("squeue failed")
        out: dict[str, ClusterStatus | None] = {}
        for line in result.stdout.splitlines():
            if not line.strip():
                continue
            parts = line.strip().split("|")
            if len(parts) != 3 or not parts[0].strip():
                raise CommandError(f"unexpected squeue line {line!r}", argv=result.argv)
            native_id, word, reason = (p.strip() for p in parts)
            state = _STATE_MAP.get(word)
            if state is None:
                out[native_id] = None
                continue
            why = None if reason in ("None", "") else reason
            if state is ClusterState.FAILED:
                why = word if not why or why == "NonZeroExitCode" else f"{word}: {why}"
            out[native_id] = ClusterStatus(state, word, why, None, "squeue")
        return out

    def __init__(self, config: BackendConfig | None = None) -> None:
        super().__init__(config)
        # "sacct" (slurmdbd), then "jobcomp" (sacct --completion reads the
        # jobcomp/filetxt log on clusters without slurmdbd), then "unavailable".
        self._accounting = "none" if self.config.extra.get("accounting") == "none" else "sacct"

    def get_accounting_command(self, native_ids: Sequence[str]) -> list[str] | None:
        ids = ",".join(native_ids)
        if self._accounting == "sacct":
            return ["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobIDRaw,State,ExitCode"]
        if self._accounting == "jobcomp":
            return ["sacct", "-c", "-n", "-P", "-j", ids, "-o", "JobID,State,ExitCode"]
        return None

    def accounting(self, native_ids: Sequence[str]) -> dict[str, ClusterStatus]:
        argv = self.get_accounting_command(native_ids)
        if argv is None or not native_ids:
            return {}
        result = self.runner.run(argv)
        if not result.ok and self._accounting == "sacct" \
                and "accounting storage is disabled" in result.stderr + result.stdout:
            log.info("slurm: no slurmdbd; reading finished jobs from the jobcomp log")
            self._accounting = "jobcomp"
            return self.accounting(native_ids)
        if not result.ok and self._accounting == "jobcomp":
            log.warning("slurm: sacct --completion unavailable (%s); using exit-code files",
                        result.stderr.strip()[:200])
            self._accounting = "unavailable"
            return {}
        return self.parse_accounting_output(result, native_ids)

    def parse_accounting_output(self, result: CommandResult,
                                native_ids: Sequence[str]) -> dict[str, ClusterStatus]:
        if not result.ok:
            raise result.error("sacct failed")
        wanted = set(native_ids)
        source = self._accounting
        out: dict[str, ClusterStatus] = {}
        for line in result.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 3 or parts[0] not in wanted:
                continue
            word = parts[1].split()[0] if parts[1].strip() else ""
            state = _STATE_MAP.get(word)
            if state is None or not state.final:
                continue
            code = None if state is ClusterState.CANCELLED else _exit_code(parts[2])
            reason = None
            if state is ClusterState.FAILED:
                reason = word if word != "FAILED" or code is None else f"FAILED: exit code {code}"
            out[parts[0]] = ClusterStatus(state, word, reason, code, source)
        return out

    def get_cancel_command(self, native_id: str) -> list[str]:
        return ["scancel", native_id]

    def cancel_already_done(self, result: CommandResult) -> bool:
        return any(marker in result.stderr for marker in _GONE)

    def cluster_name(self) -> str | None:
        """``ClusterName`` of the controller's configuration."""
        for line in self._checked(["scontrol", "show", "config"]).stdout.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ClusterName" and value.strip():
                return value.strip()
        return None

    def get_partitions_commands(self) -> list[list[str]]:
        return [["sinfo", "-h", "-o", "%P|%a|%D|%F|%C|%m"]]

    def parse_partitions(self, results: Sequence[CommandResult]) -> list[Partition]:
        merged: dict[str, dict[str, Any]] = {}
        for line in results[0].stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 6:
                if line.strip():
                    raise CommandError(f"unexpected sinfo line {line!r}")
                continue
            name, avail, _nodes, node_counts, cpu_counts, memory = parts
            default = name.endswith("*")
            name = name.rstrip("*")
            n_alloc, _n_idle, n_other, n_total = (int(x) for x in node_counts.split("/"))
            c_alloc, _c_idle, c_other, c_total = (int(x) for x in cpu_counts.split("/"))
            entry = merged.setdefault(name, {"state": avail, "default": default, "nodes": 0,
                                             "nodes_used": 0, "cores": 0, "cores_used": 0,
                                             "memory": 0})
            entry["nodes"] += n_total
            entry["nodes_used"] += n_alloc + n_other  # "other" = down/drained: not usable
            entry["cores"] += c_total
            entry["cores_used"] += c_alloc + c_other
            entry["memory"] = max(entry["memory"], int(memory.rstrip("+") or 0))
        return [Partition(name, e["state"], e["nodes"], e["nodes_used"], e["cores"],
                          e["cores_used"], e["memory"], e["default"])
                for name, e in merged.items()]

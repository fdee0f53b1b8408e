"""IBM Spectrum LSF: ``bsub`` / ``bjobs`` / ``bkill`` / ``bqueues`` + ``bhosts``.

Formats (IBM Spectrum LSF 10.1 command reference):
``bsub``: "Job <id> is submitted to [default ]queue <q>." —
https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bsub;
``bjobs -o ... -json``: {"COMMAND": "bjobs", "JOBS": n, "RECORDS": [{"JOBID": ...}]},
unknown jobs as {"JOBID": id, "ERROR": "Job <id> is not found"} —
https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=bjobs-output-format-options;
job states PEND/PROV/PSUSP/RUN/USUSP/SSUSP/DONE/EXIT/UNKWN/WAIT/ZOMBI —
https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=bjobs-description;
termination reasons TERM_OWNER, TERM_RUNLIMIT, TERM_MEMLIMIT... —
https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=bacct-termination-reasons.
``#BSUB`` directives are only read when the script comes on stdin (``bsub < script``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simfarm.workers.schedulers.base import ClusterBackend
from simfarm.workers.schedulers.commands import CommandResult
from simfarm.workers.schedulers.errors import CommandError
from simfarm.workers.schedulers.options import ClusterOptions
from simfarm.workers.schedulers.timefmt import lsf_time
from simfarm.workers.schedulers.types import (
    ClusterJobRequest,
    ClusterState,
    ClusterStatus,
    Partition,
)

_SUBMITTED = re.compile(r"Job <(\d+(?:\[\d+\])?)> is submitted")
_STATE_MAP: dict[str, ClusterState] = {
    "PEND": ClusterState.QUEUED, "PROV": ClusterState.QUEUED, "PSUSP": ClusterState.QUEUED,
    "WAIT": ClusterState.QUEUED,
    "RUN": ClusterState.RUNNING, "USUSP": ClusterState.RUNNING, "SSUSP": ClusterState.RUNNING,
    "UNKWN": ClusterState.RUNNING, "ZOMBI": ClusterState.RUNNING,
    "DONE": ClusterState.COMPLETED,
    "EXIT": ClusterState.FAILED,
}
# EXIT reasons that mean someone cancelled the job rather than it failing.
_CANCEL_REASONS = ("TERM_OWNER", "TERM_ADMIN", "TERM_FORCE_OWNER", "TERM_FORCE_ADMIN",
                   "TERM_REQUEUE_OWNER", "TERM_REQUEUE_ADMIN")
_REASON_NAMES = {"TERM_RUNLIMIT": "TIMEOUT", "TERM_MEMLIMIT": "OUT_OF_MEMORY",
                 "TERM_CPULIMIT": "CPU_LIMIT", "TERM_HOST": "NODE_FAIL"}
_TRANSIENT = ("LSF is down", "not responding", "Failed in an LSF library call",
              "Cannot connect to LSF", "Please wait")


class LsfBackend(ClusterBackend):
    """Forward jobs to IBM Spectrum LSF."""

    kind = "lsf"
    native_id_expr = '"${LSB_JOBID:?}"'
    transient_submit_errors = _TRANSIENT

    def format_time(self, seconds: int) -> str:
        return lsf_time(seconds)

    def get_submit_command(self, script: Path, request: ClusterJobRequest,
                           options: ClusterOptions) -> tuple[list[str], Path | None]:
        return ["bsub"], script

    def job_id_from_submit_output(self, out: str) -> str:
        match = _SUBMITTED.search(out)
        if not match:
            raise ValueError(out)
        return match.group(1)

    def find_submitted(self, request: ClusterJobRequest) -> str | None:
        result = self.runner.run(["bjobs", "-a", "-noheader", "-o", "jobid",
                                  "-J", self.job_name(request)])
        ids = [t for t in result.stdout.split() if t.isdigit()] if result.ok else []
        return ids[0] if ids else None

    def get_status_command(self, native_ids: Sequence[str]) -> list[str]:
        return ["bjobs", "-a", "-json", "-o", "jobid stat exit_code exit_reason pend_reason",
                *native_ids]

    def parse_status_output(self, result: CommandResult,
                            native_ids: Sequence[str]) -> dict[str, ClusterStatus | None]:
        # bjobs exits 255 when any listed job is unknown, yet still prints JSON.
        try:
            data = json.loads(result.stdout)
            records = data["RECORDS"]
        except (ValueError, KeyError, TypeError):
            raise result.error("bjobs gave no usable JSON") from None
        out: dict[str, ClusterStatus | None] = {}
        for record in records:
            if not isinstance(record, dict) or "JOBID" not in record:
                raise CommandError(f"unexpected bjobs record {record!r}", argv=result.argv)
            native_id = str(record["JOBID"])
            if "ERROR" in record:
                continue  # "Job <id> is not found": it left LSF's memory
            out[native_id] = self._status(record)
        return out

    def _status(self, record: dict[str, Any]) -> ClusterStatus | None:
        word = str(record.get("STAT", ""))
        state = _STATE_MAP.get(word)
        if state is None:
            return None
        code_text = str(record.get("EXIT_CODE", "") or "").strip()
        code = int(code_text) if code_text.lstrip("-").isdigit() else None
        exit_reason = str(record.get("EXIT_REASON", "") or "").strip()
        term = exit_reason.split(":")[0].strip()
        if state is ClusterState.QUEUED:
            pend = str(record.get("PEND_REASON", "") or "").strip()
            return ClusterStatus(state, word, pend or None, None, "bjobs")
        if state is ClusterState.COMPLETED:
            return ClusterStatus(state, word, None, code or 0, "bjobs")
        if state is ClusterState.FAILED:
            if term in _CANCEL_REASONS:
                return ClusterStatus(ClusterState.CANCELLED, word, exit_reason, None, "bjobs")
            name = _REASON_NAMES.get(term)
            reason = (f"{name} ({exit_reason})" if name else exit_reason) or (
                f"exit code {code}" if code is not None else "EXIT")
            return ClusterStatus(state, word, reason, code, "bjobs")
        return ClusterStatus(state, word, None, None, "bjobs")

    def get_cancel_command(self, native_id: str) -> list[str]:
        return ["bkill", native_id]

    def cancel_already_done(self, result: CommandResult) -> bool:
        text = result.stdout + result.stderr
        return "already finished" in text or "No matching job found" in text

    def get_partitions_commands(self) -> list[list[str]]:
        return [["bqueues", "-w"], ["bhosts", "-w"]]

    def parse_partitions(self, results: Sequence[CommandResult]) -> list[Partition]:
        queues = _table(results[0].stdout, "QUEUE_NAME")
        hosts = _table(results[1].stdout, "HOST_NAME")
        slots = used = usable_nodes = busy_nodes = 0
        for host in hosts:
            max_slots = int(host["MAX"]) if host["MAX"].isdigit() else 0
            njobs = int(host["NJOBS"]) if host["NJOBS"].isdigit() else 0
            usable = host["STATUS"] in ("ok", "closed_Full", "closed")
            slots += max_slots
            used += njobs if usable else max_slots
            usable_nodes += 1
            busy_nodes += 1 if njobs or not usable else 0
        return [Partition(q["QUEUE_NAME"], q["STATUS"], usable_nodes, busy_nodes, slots, used)
                for q in queues]


def _table(text: str, first_column: str) -> list[dict[str, str]]:
    """Rows of an LSF whitespace table whose header starts with ``first_column``."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].split() or lines[0].split()[0] != first_column:
        raise CommandError(f"expected a table starting with {first_column}, got {text[:200]!r}")
    header = lines[0].split()
    rows = []
    for line in lines[1:]:
        cells = line.split()
        if len(cells) != len(header):
            raise CommandError(f"unexpected row {line!r} under {' '.join(header)}")
        rows.append(dict(zip(header, cells, strict=True)))
    return rows

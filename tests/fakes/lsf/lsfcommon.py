"""FAKE IBM Spectrum LSF -- shared helpers for the fake bsub/bjobs/bkill/bqueues/bhosts.

Formats follow the IBM Spectrum LSF 10.1 command reference:
  bsub     https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bsub
  bjobs    https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bjobs
           (-o output fields, -json: {"COMMAND","JOBS","RECORDS"})
  bkill    https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bkill
  bqueues  https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bqueues
  bhosts   https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=reference-bhosts
  exit reasons: https://www.ibm.com/docs/en/spectrum-lsf/10.1.0?topic=bacct-termination-reasons
Differences from real LSF: one host, no slot accounting for dispatch (jobs start after
SIMFARM_FAKE_PEND_S), no job report appended to the -o file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fakequeue

HOST = "fakehost"
STAT = {"pending": "PEND", "running": "RUN", "done": "DONE", "exit": "EXIT",
        "killed": "EXIT", "timeout": "EXIT"}
EXIT_REASON = {
    "killed": "TERM_OWNER: job killed by owner",
    "timeout": "TERM_RUNLIMIT: job killed after reaching LSF run time limit",
}


def queues() -> list[str]:
    """Configured queue names; the first is the default queue."""
    return os.environ.get("SIMFARM_FAKE_LSF_QUEUES", "normal,short").split(",")


def slots() -> int:
    return int(os.environ.get("SIMFARM_FAKE_LSF_SLOTS", "8"))


__all__ = ["EXIT_REASON", "HOST", "STAT", "fakequeue", "queues", "slots"]

"""Per-job scratch folders on a worker: created fresh for each attempt, removed after
success, kept after a failure until their retention time passes."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

EXPIRY_MARKER = ".simfarm-expires"


def scratch_folder(root: Path, job_id: str) -> Path:
    """A fresh, empty scratch folder for one attempt of a job."""
    folder = root / job_id
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def keep(folder: Path, retention_s: float) -> None:
    """Keep a failed job's folder for ``retention_s`` seconds (for inspection)."""
    (folder / EXPIRY_MARKER).write_text(repr(time.time() + retention_s))


def remove(folder: Path) -> None:
    """Delete a scratch folder."""
    shutil.rmtree(folder, ignore_errors=True)


def clean_expired(root: Path, now: float | None = None) -> list[str]:
    """Delete kept folders whose retention passed; returns their job ids."""
    now = time.time() if now is None else now
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for marker in root.glob(f"*/{EXPIRY_MARKER}"):
        try:
            expires = float(marker.read_text())
        except (OSError, ValueError):
            continue
        if expires <= now:
            shutil.rmtree(marker.parent, ignore_errors=True)
            removed.append(marker.parent.name)
            log.info("job %s: kept scratch folder expired; removed", marker.parent.name)
    return removed

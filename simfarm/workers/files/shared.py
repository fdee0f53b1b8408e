"""Shared-storage projects: map the submitted paths to this node's and check them
before anything starts, so a missing or unreadable project fails with a clear reason."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from simfarm.common.models import Job
from simfarm.common.pathmap import map_path
from simfarm.workers.context import WorkerContext

log = logging.getLogger(__name__)


def _readable(path: Path) -> bool:
    if path.is_dir():
        return os.access(path, os.R_OK | os.X_OK)
    return os.access(path, os.R_OK)


def _shown(local: str, submitted: str) -> str:
    return local if local == submitted else f"{local} (submitted as {submitted})"


def prepare_shared(ctx: WorkerContext, job: Job) -> tuple[Job, str | None]:
    """The job with its paths as this node sees them, or the reason it cannot run here."""
    rules = ctx.settings.path_map
    node = ctx.node_name
    spec = job.spec
    update: dict[str, object] = {}
    if spec.cwd:
        cwd = map_path(spec.cwd, rules)
        if not Path(cwd).is_dir():
            return job, f"working directory {_shown(cwd, spec.cwd)} does not exist on node {node}"
        update["cwd"] = cwd
    if spec.argv and rules:
        update["argv"] = [map_path(arg, rules) for arg in spec.argv]
    if spec.hfss is not None:
        submitted = spec.hfss.project_path
        local = map_path(submitted, rules)
        project = Path(local)
        if not project.exists():
            return job, (f"project {_shown(local, submitted)} does not exist on node {node} "
                         "(check the share is mounted and the path-mapping rules)")
        if not _readable(project):
            return job, f"project {_shown(local, submitted)} is not readable on node {node}"
        if local != submitted:
            update["hfss"] = spec.hfss.model_copy(update={"project_path": local})
            log.info("job %s: project %s mapped to %s", job.id, submitted, local)
    if not update:
        return job, None
    return job.model_copy(update={"spec": spec.model_copy(update=update)}), None

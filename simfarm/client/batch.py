"""Submitting every project of a folder as one sweep (``simfarm submit-batch``; also
behind the PyEDB-compatible ``submit_local_job`` when given a folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from simfarm.common.files import ProjectFiles
from simfarm.common.hfss import MachineNode, create_hfss_config
from simfarm.common.projects import scan_projects
from simfarm.common.sweeps import SweepSpec

Upload = Callable[[Path], ProjectFiles]


def batch_sweep(
    projects: list[Path],
    *,
    cores: int | None = None,
    staged: bool = False,
    upload: Upload | None = None,
    throttle: int | None = None,
    priority: int | None = None,
    name: str = "",
) -> SweepSpec:
    """A sweep with one HFSS child per project. Shared mode sends each project's absolute
    path (nodes map it with their rules); staged mode uploads each project first."""
    if not projects:
        raise ValueError("no projects to submit")
    config = create_hfss_config(project_path="placeholder.aedt")
    if cores:
        if not config.machine_nodes:
            config.machine_nodes.append(MachineNode())
        config.machine_nodes[0].cores = cores
        config.machine_nodes[0].max_cores = cores
    hfss = config.model_dump(mode="json")
    hfss.pop("jobid", None)  # each child gets its own
    template: dict[str, Any] = {"kind": "hfss", "name": "{name}", "hfss": hfss}
    if priority is not None:
        template["priority"] = priority
    variations: list[dict[str, str | int | float | bool]] = []
    if staged:
        if upload is None:
            raise ValueError("staged batches need an upload function")
        hfss["project_path"] = "{name}"
        template["files"] = {"mode": "staged", "archive": "{archive}", "project": "{name}"}
        for project in projects:
            files = upload(project)
            assert files.archive is not None
            variations.append({"name": project.name, "archive": files.archive})
    else:
        hfss["project_path"] = "{project}"
        variations = [{"name": p.name, "project": str(p.resolve())} for p in projects]
    return SweepSpec(name=name, template=template, variations=variations, throttle=throttle)


def folder_sweep(root: Path, recursive: bool = False, **options: Any) -> SweepSpec:
    """:func:`batch_sweep` of every project found in ``root``."""
    projects = scan_projects(root, recursive)
    if not projects:
        raise ValueError(f"no .aedb folders or .aedt files in {root}")
    return batch_sweep(projects, name=options.pop("name", "") or f"batch {root.name}",
                       **options)

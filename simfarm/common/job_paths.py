"""Which fields of a job are paths, and the checks they get (see :mod:`simfarm.common.paths`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simfarm.common.models import JobSpec
from simfarm.common.paths import check_path
from simfarm.common.settings import Settings


def spec_paths(spec: JobSpec) -> list[tuple[str, str, bool]]:
    """``(field, path, under_roots)`` for every path in ``spec``; ``under_roots`` is False
    for program paths, which live in install folders rather than data folders."""
    out: list[tuple[str, str, bool]] = []
    if spec.cwd is not None:
        out.append(("cwd", spec.cwd, True))
    staged = spec.files is not None and spec.files.mode == "staged"
    if spec.hfss is not None and not staged:  # staged: a name inside the job's scratch
        out.append(("hfss.project_path", spec.hfss.project_path, True))
        if spec.hfss.ansys_edt_path:
            out.append(("hfss.ansys_edt_path", spec.hfss.ansys_edt_path, False))
    return out


def node_roots(settings: Settings) -> list[str]:
    """Roots a worker checks resolved paths against: the configured ones (in this node's
    own form, after path mapping) plus simfarm's own state and scratch folders; empty when
    none are configured, which allows any path."""
    if not settings.allowed_roots:
        return []
    return [*settings.allowed_roots, str(settings.state_dir), str(settings.scratch_root())]


def check_spec_paths(spec: JobSpec, roots: Sequence[str | Path]) -> None:
    """Raise :class:`~simfarm.common.paths.PathRejected` for the first bad path of ``spec``."""
    for field, path, under_roots in spec_paths(spec):
        check_path(path, roots if under_roots else (), field=field)

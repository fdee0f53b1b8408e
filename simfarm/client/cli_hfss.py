"""How ``simfarm submit`` builds a job from a file (JSON or TOML) or from HFSS flags."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simfarm.client.cli_common import UserError
from simfarm.common.hfss import (
    HFSSSimulationConfig,
    MachineNode,
    SchedulerType,
    create_hfss_config,
)

# Keys that make a file a job spec rather than PyEDB's HFSS configuration.
_SPEC_KEYS = {"argv", "kind", "hfss", "resources"}


def load_file(path: str) -> dict[str, Any]:
    """A JSON or TOML file (by suffix; JSON otherwise) as a dict."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path} is not valid {file.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold an object (a job spec or an HFSS configuration)")
    return data


def spec_from_file(path: str) -> dict[str, Any] | HFSSSimulationConfig:
    """A job spec (has ``argv``/``kind``/``hfss``...) or an HFSS configuration (PyEDB's
    ``HFSSSimulationConfig.to_dict()`` format, e.g. a ``config`` saved by PyEDB)."""
    data = load_file(path)
    if _SPEC_KEYS & data.keys():
        return data
    try:
        return HFSSSimulationConfig.from_dict(data)
    except ValidationError as exc:
        raise UserError.invalid(exc, "HFSS config") from exc


def _machine(text: str) -> MachineNode:
    host, _, cores = text.partition(":")
    try:
        return MachineNode(hostname=host, cores=int(cores) if cores else -1)
    except (ValueError, ValidationError) as exc:
        raise UserError(f"--machine {text!r}: use HOST or HOST:CORES ({exc})") from exc


def hfss_from_flags(
    project: str,
    design: str,
    setup: str,
    design_mode: str,
    aedt_path: str,
    scheduler: str | None,
    machines: tuple[str, ...],
    jobid: str,
) -> HFSSSimulationConfig:
    """The HFSS configuration described by ``simfarm submit --hfss`` flags."""
    try:
        return create_hfss_config(
            project_path=str(Path(project).absolute()) if "://" not in project else project,
            jobid=jobid,
            ansys_edt_path=aedt_path,
            design_name=design,
            setup_name=setup,
            design_mode=design_mode,
            machine_nodes=[_machine(m) for m in machines] or None,
            scheduler_type=SchedulerType(scheduler.lower()) if scheduler else SchedulerType.NONE,
        )
    except ValidationError as exc:
        raise UserError.invalid(exc, "HFSS job") from exc

"""What ``submit`` accepts, turned into the JSON body of ``POST /api/v1/jobs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from simfarm.common.hfss import HFSSSimulationConfig
from simfarm.common.models import JobSpec

SpecLike: TypeAlias = JobSpec | HFSSSimulationConfig | Mapping[str, Any] | Sequence[str]


def hfss_spec(config: HFSSSimulationConfig) -> JobSpec:
    """The job that runs an HFSS configuration (PyEDB's ``HFSSSimulationConfig``); the
    gateway derives its resource request from the config at submit (the cores the
    machine list tells ansysedt, AEDT on the node, or the cluster scheduler)."""
    owner = config.user if config.user and config.user != "unknown" else None
    return JobSpec(name=config.jobid, kind="hfss", hfss=config, owner=owner)


def job_body(spec_or_config: SpecLike, priority: int | None = None) -> dict[str, Any]:
    """The submit body for a :class:`JobSpec`, an :class:`HFSSSimulationConfig`, a dict
    in the REST API's shape, or an argv list. ``priority`` (0-10) overrides the spec's.

    Dicts are sent as they are, so the gateway reports every bad field at once (422).
    """
    if isinstance(spec_or_config, HFSSSimulationConfig):
        body = hfss_spec(spec_or_config).submit_body()
    elif isinstance(spec_or_config, JobSpec):
        body = spec_or_config.submit_body()
    elif isinstance(spec_or_config, Mapping):
        body = dict(spec_or_config)
    elif isinstance(spec_or_config, Sequence) and not isinstance(spec_or_config, str | bytes):
        body = {"argv": [str(a) for a in spec_or_config]}
    else:
        raise TypeError(
            "submit() takes a JobSpec, an HFSSSimulationConfig, a dict or an argv list, "
            f"not {type(spec_or_config).__name__}"
        )
    if priority is not None:
        body["priority"] = priority
    return body

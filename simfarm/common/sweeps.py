"""Sweeps: one parent expanding to child jobs, one per variation.

Variations come as an explicit list or as a grid (the cartesian product of value lists,
the last variable changing fastest). Every string of the template job may name a
variable as ``{name}`` (and ``{index}``, the child's index); ``{{`` and ``}}`` stand for
literal braces. Each child also gets its variables as ``SIMFARM_VAR_<NAME>`` environment
variables and ``SIMFARM_SWEEP_INDEX``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simfarm.common.deps import Dependencies
from simfarm.common.models import JobSpec

MAX_CHILDREN = 10_000
Scalar = str | int | float | bool
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SweepSpec(BaseModel):
    """What a user submits to run one job per variation."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    template: dict[str, Any] = Field(
        description="the job to run (a job spec) whose strings may hold {var} placeholders; "
        "it is validated once rendered for each variation"
    )
    variations: list[dict[str, Scalar]] | None = Field(
        default=None, description="explicit list of variations (variable -> value)"
    )
    grid: dict[str, list[Scalar]] | None = Field(
        default=None, description="variable -> values; every combination is one child"
    )
    throttle: int | None = Field(
        default=None, ge=1, le=MAX_CHILDREN, description="at most this many children at once"
    )
    depends_on: Dependencies | None = Field(
        default=None, description="jobs or sweeps every child waits for"
    )
    elementwise: bool = Field(
        default=False,
        description="child i waits for child i of each sweep in depends_on (same sizes)",
    )

    @field_validator("variations")
    @classmethod
    def _check_variations(
        cls, value: list[dict[str, Scalar]] | None
    ) -> list[dict[str, Scalar]] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("give at least one variation")
        if len(value) > MAX_CHILDREN:
            raise ValueError(f"at most {MAX_CHILDREN} variations")
        for variation in value:
            _check_names(variation)
        return value

    @field_validator("grid")
    @classmethod
    def _check_grid(cls, value: dict[str, list[Scalar]] | None) -> dict[str, list[Scalar]] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("give at least one variable")
        _check_names(value)
        size = 1
        for name, values in value.items():
            if not values:
                raise ValueError(f"variable {name!r} has no values")
            size *= len(values)
        if size > MAX_CHILDREN:
            raise ValueError(f"the grid has {size} combinations; at most {MAX_CHILDREN}")
        return value

    @model_validator(mode="after")
    def _check_shape(self) -> SweepSpec:
        if (self.variations is None) == (self.grid is None):
            raise ValueError("give either 'variations' or 'grid'")
        if self.template.get("depends_on") is not None:
            raise ValueError("put dependencies on the sweep ('depends_on'), not on the template")
        if self.template.get("owner") is not None:  # the sweep's owner owns every child
            raise ValueError("a template may not name an owner: the children belong to the "
                             "sweep's owner")
        if self.elementwise and (self.depends_on is None or self.depends_on.is_empty()):
            raise ValueError("'elementwise' needs 'depends_on'")
        return self

    def expand(self) -> list[dict[str, Scalar]]:
        """The variations, in child-index order."""
        if self.variations is not None:
            return [dict(v) for v in self.variations]
        assert self.grid is not None
        names = list(self.grid)
        return [dict(zip(names, combo, strict=True))
                for combo in itertools.product(*self.grid.values())]


def _check_names(variables: Mapping[str, Any]) -> None:
    for name in variables:
        if not _VAR.match(name) or name == "index":
            raise ValueError(
                f"variable name {name!r} must be an identifier (letters, digits, _) other "
                "than 'index'"
            )


def render_text(text: str, variables: Mapping[str, Scalar]) -> str:
    """``text`` with ``{name}`` replaced; ValueError names an unknown placeholder."""

    def _sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name not in variables:
            raise ValueError(
                f"unknown placeholder {{{name}}} (variables: {', '.join(sorted(variables))}); "
                "write {{ and }} for literal braces"
            )
        value = variables[name]
        return str(value).lower() if isinstance(value, bool) else str(value)

    return _PLACEHOLDER.sub(_sub, text)


def _render(value: Any, variables: Mapping[str, Scalar]) -> Any:
    if isinstance(value, str):
        return render_text(value, variables)
    if isinstance(value, list):
        return [_render(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, variables) for k, v in value.items()}
    return value


def render_child(
    template: Mapping[str, Any], variation: Mapping[str, Scalar], index: int
) -> JobSpec:
    """The child job of one variation: placeholders filled, variables in its environment.
    Raises ValueError (unknown placeholder) or pydantic's ValidationError."""
    variables: dict[str, Scalar] = {**variation, "index": index}
    data = _render(dict(template), variables)
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError("template.env must be an object")
    env = dict(env)
    for name, value in variation.items():
        env[f"SIMFARM_VAR_{name.upper()}"] = str(value).lower() if isinstance(value, bool) \
            else str(value)
    env["SIMFARM_SWEEP_INDEX"] = str(index)
    data["env"] = env
    return JobSpec.model_validate(data)


def throttle_reason(throttle: int) -> str:
    """The reason shown on a child gated by its sweep's throttle."""
    return f"sweep throttle: at most {throttle} children at once"


def sweep_state(counts: Mapping[str, int]) -> str:
    """The parent's state from its children's counts per state (``held`` when someone
    holds every child)."""
    total = sum(counts.values())
    active = counts.get("scheduled", 0) + counts.get("running", 0)
    ended = counts.get("completed", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
    if total == 0:
        return "pending"
    if ended == total:
        if counts.get("failed", 0):
            return "failed"
        if counts.get("cancelled", 0):
            return "cancelled"
        return "completed"
    if active or ended:
        return "running"
    if counts.get("held", 0) == total:
        return "held"
    return "pending"


class SweepChild(BaseModel):
    """One child as listed with its sweep."""

    index: int
    job_id: str
    state: str
    variation: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    results: dict[str, Any] | None = None


class Sweep(BaseModel):
    """A sweep as stored and reported: its spec, size and its children's progress."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str = ""
    state: str = "pending"
    size: int
    throttle: int | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    created_at: datetime
    owner: str | None = None
    cancel_requested: bool = False
    spec: SweepSpec
    children: list[SweepChild] = Field(default_factory=list)

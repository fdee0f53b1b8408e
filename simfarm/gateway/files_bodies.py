"""JSON bodies of the files, sweeps, history and audit routes (for the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.sweeps import Sweep
from simfarm.gateway.openapi.bodies import JobOut


class BlobOut(BaseModel):
    """A stored blob."""

    model_config = ConfigDict(extra="forbid")

    sha256: str
    size: int | None = Field(description="bytes")
    created: bool = Field(description="false when the blob was already stored (deduplicated)")


class SweepListOut(BaseModel):
    """One page of sweeps (without their children); pass ``next_cursor`` back."""

    sweeps: list[Sweep]
    next_cursor: str | None = None


class HistoryOut(BaseModel):
    """Finished jobs newest first; pass ``next_cursor`` back as ``cursor``."""

    jobs: list[JobOut]
    next_cursor: str | None = None

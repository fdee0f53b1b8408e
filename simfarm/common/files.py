"""How a job's project files reach the node that runs it, and how its results come back.

* ``shared`` (default): the project path is on storage every node mounts; each node
  maps it to its own form with its path-mapping rules and checks it before starting.
* ``staged``: the client uploads the project as a tar archive to the gateway's blob
  store; the worker downloads it into a per-job scratch folder, verifies its SHA-256,
  runs there and uploads the results (``.aedtresults``, logs, declared outputs).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_OUTPUTS = 100


def check_relative(value: str, what: str) -> str:
    """A relative POSIX path inside the job folder (no ``..``, not absolute)."""
    path = PurePosixPath(value.replace("\\", "/"))
    if not value or path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{what} must be a relative path inside the job folder, got {value!r}")
    return str(path)


class ProjectFiles(BaseModel):
    """File handling of one job."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["shared", "staged"] = Field(
        default="shared", description="shared storage with path mapping, or staged via the gateway"
    )
    archive: str | None = Field(
        default=None, description="staged: SHA-256 of the uploaded project archive (tar)"
    )
    project: str | None = Field(
        default=None,
        description="staged: the project inside the archive, e.g. 'board.aedb'; an HFSS job's "
        "project_path is set to it in the scratch folder",
    )
    outputs: list[str] = Field(
        default_factory=list,
        description="staged: glob patterns (relative to the job folder) returned as results "
        "besides the .aedtresults folder and the batch log",
    )

    @field_validator("archive")
    @classmethod
    def _check_archive(cls, value: str | None) -> str | None:
        if value is not None and not SHA256.match(value):
            raise ValueError("must be a lowercase hex SHA-256 (64 characters)")
        return value

    @field_validator("project")
    @classmethod
    def _check_project(cls, value: str | None) -> str | None:
        return None if value is None else check_relative(value, "project")

    @field_validator("outputs")
    @classmethod
    def _check_outputs(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_OUTPUTS:
            raise ValueError(f"at most {MAX_OUTPUTS} output patterns")
        return [check_relative(v, "an output pattern") for v in value]

    @model_validator(mode="after")
    def _check_mode(self) -> ProjectFiles:
        if self.mode == "staged" and self.archive is None:
            raise ValueError("staged jobs need 'archive', the SHA-256 of the uploaded project")
        if self.mode == "shared" and (self.archive or self.outputs):
            raise ValueError("'archive' and 'outputs' are only used by staged jobs")
        return self


class ResultsInfo(BaseModel):
    """The results archive a worker uploaded for a staged job."""

    sha256: str
    size: int
    files: list[str] = Field(default_factory=list, description="paths inside the archive")
    partial: bool = Field(default=False, description="collected after a failure or cancel")

"""Checks for paths that end up on scheduler directive lines."""

from __future__ import annotations

import re
from pathlib import Path

from simfarm.workers.schedulers.errors import InvalidOptions

# `#SBATCH --output=...`, `#BSUB -o ...`, `#PBS -o ...` are split on whitespace by the
# schedulers, and quotes are handled differently by each; keep such paths plain.
_DIRECTIVE_PATH = re.compile(r"^[A-Za-z0-9_./\-+@%,=:~]+$")


def check_directive_path(path: Path) -> Path:
    """Return ``path`` if it can appear on a directive line, else raise InvalidOptions."""
    if not _DIRECTIVE_PATH.match(str(path)):
        raise InvalidOptions(
            f"cluster job directory {str(path)!r} must not contain spaces, quotes or shell "
            "characters (it is written on scheduler directive lines)")
    return path

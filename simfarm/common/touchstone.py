"""Touchstone (``.sNp``) results as a compact summary: |Sij| in dB against frequency,
parsed with scikit-rf (the optional extra ``simfarm[rf]``), small enough to keep with
the job and to draw on its page (``GET /api/v1/jobs/{id}/sparameters``).

Bounds: at most :data:`MAX_POINTS` frequencies per file (evenly decimated), every Sij
up to :data:`MAX_FULL_PORTS` ports and, beyond, the reflections Sii and the
transmissions Si1 only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

MAX_POINTS = 1001
MAX_FULL_PORTS = 4
MAX_FILE_BYTES = 50 * 1024 * 1024
TOUCHSTONE_NAME = re.compile(r"\.s([1-9][0-9]?)p$", re.IGNORECASE)


class TouchstoneSummary(BaseModel):
    """One Touchstone file of a job's results, reduced to what the plot needs."""

    name: str = Field(description="path relative to the folder it was found in")
    ports: int = 0
    points: int = Field(default=0, description="frequencies in the file")
    frequency_hz: list[float] = Field(default_factory=list, description="kept frequencies")
    db: dict[str, list[float]] = Field(
        default_factory=dict, description="`S21` -> |S21| in dB at each kept frequency")
    z0: float | None = Field(default=None, description="reference impedance of port 1, ohm")
    error: str | None = Field(default=None, description="why the file could not be read")


def is_touchstone(path: Path) -> bool:
    """Whether the name looks like ``*.sNp``."""
    return bool(TOUCHSTONE_NAME.search(path.name))


def _traces(ports: int) -> list[tuple[int, int]]:
    if ports <= MAX_FULL_PORTS:
        return [(i, j) for i in range(ports) for j in range(ports)]
    return sorted({(i, i) for i in range(ports)} | {(i, 0) for i in range(ports)})


def summarize(path: Path, name: str) -> TouchstoneSummary:
    """Read one Touchstone file (a summary with ``error`` set when it cannot be read)."""
    try:
        import numpy as np
        import skrf
    except ImportError:
        return TouchstoneSummary(name=name, error=(
            "scikit-rf is not installed on the node (pip install 'simfarm[rf]')"))
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return TouchstoneSummary(name=name, error=f"larger than {MAX_FILE_BYTES} bytes")
        network: Any = skrf.Network(str(path))
    except Exception as exc:  # scikit-rf raises many kinds for a malformed file
        return TouchstoneSummary(name=name, error=f"not a readable Touchstone file: {exc}")
    count = len(network.f)
    keep = np.unique(np.linspace(0, count - 1, min(count, MAX_POINTS)).round().astype(int))
    ports = int(network.nports)
    db = network.s_db[keep]
    traces = {f"S{i + 1}{j + 1}" if ports < 10 else f"S{i + 1},{j + 1}":
              [round(float(v), 4) for v in db[:, i, j]] for i, j in _traces(ports)}
    z0 = network.z0
    return TouchstoneSummary(
        name=name, ports=ports, points=count,
        frequency_hz=[float(f) for f in network.f[keep]], db=traces,
        z0=float(z0[0, 0].real) if z0.size else None)


def to_csv(summary: TouchstoneSummary) -> str:
    """The plotted data as CSV: ``frequency_hz`` then one ``|Sij| dB`` column each."""
    names = list(summary.db)
    lines = [",".join(["frequency_hz", *(f"{n}_db" for n in names)])]
    for k, freq in enumerate(summary.frequency_hz):
        lines.append(",".join([repr(freq), *(repr(summary.db[n][k]) for n in names)]))
    return "\n".join(lines) + "\n"

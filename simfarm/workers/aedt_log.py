"""Read AEDT batch logs: message levels, error markers and solve progress.

The formats come from a real HFSS 3D Layout batch log (AEDT 2025.2, shipped as
``tests/example_models/test.log`` in ansys/pyedb) and PyEDB's own
``hfss_log_parser``: each message is ``[info|warning|error|fatal] Project:P,
Design:D, text (hh:mm:ss AM  Mon dd, yyyy)``; the solver's profile lines carry
``[PROFILE] Adaptive Pass N : Frequency: F``, ``[CONVERGE] Pass Number: N; ...
Max Mag. Delta S: x``, ``Adaptive Passes converged``, ``From a to b, K Frequencies``
and ``Frequency - F : Elapsed time``.  A job fails on a non-zero exit status or on
an ``[error]``/``[fatal]`` message (or PyEDB's ``*** ERROR ***``), never because the
word "error" appears inside an ordinary message.

AEDT *appends* to ``<project>.log``, so a reader starts at the size the file had
when the run began (:class:`LogTail`).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EchoFilter",
    "LogTail",
    "ProgressTracker",
    "batch_log_path",
    "failure_reason",
    "is_error_line",
    "message_level",
    "read_max_passes",
    "read_target_delta_s",
    "results_folder",
]

_LEVEL = re.compile(r"^\[(info|warning|error|fatal)\]", re.IGNORECASE)
_ADAPTIVE_PASS = re.compile(r"\[PROFILE\]\s*Adaptive Pass (\d+)\s*:\s*Frequency:\s*(\S+)")
_CONVERGE = re.compile(
    r"\[CONVERGE\]\s*Pass Number:\s*(\d+);.*?Max Mag\. Delta S:\s*([0-9.eE+-]+|N/A)", re.I
)
_ELEMENTS = re.compile(r"Solved Elements:\s*(\d+)", re.I)
_SWEEP_START = re.compile(r"\[PROFILE\]\s*Frequency Sweep\b")
_SWEEP_KIND = re.compile(r"\[PROFILE\]\s*Solution - (.+?) : (Interpolating|Discrete|Fast)\b")
_SWEEP_RANGE = re.compile(r"From (\S+) to (\S+), (\d+) Frequencies")
_SWEEP_DONE_POINT = re.compile(r"\[PROFILE\]\s*Frequency - (\S+) : Elapsed time")
_MAX_PASSES = re.compile(r"\bMaximumPasses=(\d+)")
_MAX_DELTA_S = re.compile(r"\bMaxDeltaS=([0-9.eE+-]+)")
MAX_SWEEP_POINTS = 2000  # solved frequencies kept in the convergence series


def message_level(line: str) -> str | None:
    """Return ``info``/``warning``/``error``/``fatal`` for a message line, else ``None``."""
    m = _LEVEL.match(line)
    return m.group(1).lower() if m else None


def is_error_line(line: str) -> bool:
    """True for a real AEDT error marker, not for any line that merely says "error"."""
    return message_level(line) in ("error", "fatal") or "*** ERROR ***" in line


def failure_reason(exit_code: int | None, error_lines: list[str]) -> str | None:
    """Decide a finished run: ``None`` when it succeeded, else a one-line reason."""
    if exit_code is None:
        return "ansysedt did not report an exit status"
    if exit_code != 0:
        detail = f": {error_lines[0]}" if error_lines else ""
        return f"ansysedt exited with status {exit_code}{detail}"
    if error_lines:
        more = f" (+{len(error_lines) - 1} more)" if len(error_lines) > 1 else ""
        return f"AEDT reported an error: {error_lines[0]}{more}"
    return None


def batch_log_path(project_path: str | Path) -> Path:
    """Where AEDT writes the batch log by default: ``<project folder>/<project name>.log``."""
    return Path(project_path).with_suffix(".log")


def results_folder(project_path: str | Path) -> Path:
    """The ``<project name>.aedtresults`` folder AEDT writes solutions into."""
    return Path(project_path).with_suffix(".aedtresults")


def _setup_value(project_path: str | Path, setup_name: str, pattern: re.Pattern[str]) -> str | None:
    """The first match of ``pattern`` in a text ``.aedt`` project (inside the setup's
    ``$begin '<name>'`` block when ``setup_name`` is given and found), else ``None``."""
    path = Path(project_path)
    if path.suffix.lower() != ".aedt" or not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if setup_name:
        start = text.find(f"$begin '{setup_name}'")
        end = text.find(f"$end '{setup_name}'", start)
        if start >= 0 and end > start and (m := pattern.search(text, start, end)):
            return m.group(1)
    m = pattern.search(text)
    return m.group(1) if m else None


def read_max_passes(project_path: str | Path, setup_name: str = "") -> int | None:
    """Best effort: the adaptive ``MaximumPasses`` of a text ``.aedt`` project, else ``None``.

    With ``setup_name`` the value inside that setup's ``$begin '<name>'`` block wins.
    ``.aedb`` projects keep setups in a binary database and yield ``None``.
    """
    value = _setup_value(project_path, setup_name, _MAX_PASSES)
    return int(value) if value is not None else None


def read_target_delta_s(project_path: str | Path, setup_name: str = "") -> float | None:
    """Best effort: the setup's convergence target ``MaxDeltaS`` (as for
    :func:`read_max_passes`), else ``None``."""
    value = _setup_value(project_path, setup_name, _MAX_DELTA_S)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class ProgressTracker:
    """Fold batch-log lines into a structured progress record.

    ``as_dict()`` gives ``phase`` (``starting``, ``adaptive``, ``sweep``, ``done``),
    ``adaptive_pass``, ``max_passes``, ``target_delta_s``, ``delta_s``, ``converged``,
    ``sweep``, ``sweep_frequencies``, ``sweep_solved``, ``last_frequency`` and ``errors``;
    ``series()`` the whole history: every adaptive pass with its Max Mag. Delta S and
    every solved sweep frequency (what the job page and ``/progress`` draw).
    """

    max_passes: int | None = None
    target_delta_s: float | None = None
    phase: str = "starting"
    adaptive_pass: int | None = None
    adaptive_frequency: str | None = None
    delta_s: float | None = None
    converged: bool | None = None
    sweep: str | None = None
    sweep_frequencies: int | None = None
    sweep_solved: int = 0
    last_frequency: str | None = None
    completed_normally: bool = False
    errors: list[str] = field(default_factory=list)
    passes: dict[int, dict[str, Any]] = field(default_factory=dict)
    sweep_points: list[str] = field(default_factory=list)

    def feed(self, line: str) -> bool:
        """Take one log line; return True when the progress record changed."""
        before = self.as_dict()
        if is_error_line(line):
            self.errors.append(line.strip())
        if m := _ADAPTIVE_PASS.search(line):
            self.phase = "adaptive"
            self.adaptive_pass = int(m.group(1))
            self.adaptive_frequency = m.group(2)
            self._pass(self.adaptive_pass)
        elif m := _CONVERGE.search(line):
            self.adaptive_pass = int(m.group(1))
            self.delta_s = None if m.group(2).upper() == "N/A" else float(m.group(2))
            entry = self._pass(self.adaptive_pass)
            entry["delta_s"] = self.delta_s
            if e := _ELEMENTS.search(line):
                entry["elements"] = int(e.group(1))
        elif "Adaptive Passes converged" in line:
            self.converged = True
        elif "Adaptive Passes did not converge" in line:
            self.converged = False
        elif _SWEEP_START.search(line):
            self.phase = "sweep"
        elif m := _SWEEP_KIND.search(line):
            self.phase = "sweep"
            self.sweep = m.group(2)
        elif m := _SWEEP_RANGE.search(line):
            self.sweep_frequencies = int(m.group(3))
        elif m := _SWEEP_DONE_POINT.search(line):
            self.sweep_solved += 1
            self.last_frequency = m.group(1)
            if len(self.sweep_points) < MAX_SWEEP_POINTS:
                self.sweep_points.append(m.group(1))
        elif "Normal completion of simulation" in line:
            self.phase = "done"
            self.completed_normally = True
        return self.as_dict() != before

    def _pass(self, number: int) -> dict[str, Any]:
        entry = self.passes.get(number)
        if entry is None:
            entry = self.passes[number] = {"pass": number, "frequency": self.adaptive_frequency,
                                           "delta_s": None, "elements": None}
        return entry

    def series(self) -> dict[str, Any]:
        """The JSON-safe convergence history: adaptive passes and solved sweep points."""
        return {
            "max_passes": self.max_passes,
            "target_delta_s": self.target_delta_s,
            "converged": self.converged,
            "passes": [dict(self.passes[n]) for n in sorted(self.passes)],
            "sweep": None if self.sweep is None and not self.sweep_points else {
                "type": self.sweep, "frequencies": self.sweep_frequencies,
                "solved": self.sweep_solved, "points": list(self.sweep_points)},
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON-safe progress record."""
        return {
            "phase": self.phase,
            "adaptive_pass": self.adaptive_pass,
            "max_passes": self.max_passes,
            "target_delta_s": self.target_delta_s,
            "adaptive_frequency": self.adaptive_frequency,
            "delta_s": self.delta_s,
            "converged": self.converged,
            "sweep": self.sweep,
            "sweep_frequencies": self.sweep_frequencies,
            "sweep_solved": self.sweep_solved,
            "last_frequency": self.last_frequency,
            "errors": len(self.errors),
        }


class LogTail:
    """Read the lines a run appends to a log file, starting where the file ended at creation."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        self._partial = b""

    def read_lines(self, final: bool = False) -> list[str]:
        """Return complete new lines (and a trailing partial line when ``final``)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            if self.path.stat().st_size < self._offset:  # truncated or replaced: start over
                self._offset = 0
            handle.seek(self._offset)
            data = handle.read()
            self._offset += len(data)
        chunk = self._partial + data
        *lines, self._partial = chunk.split(b"\n")
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        return [raw.decode("utf-8", errors="replace").rstrip("\r") for raw in lines]


class EchoFilter:
    """Keeps one copy of lines that arrive on two streams: ``-monitor`` echoes each batch-log
    message on stdout, so without this every solver line would be shown twice.

    :meth:`first` is True for a line not yet seen on the other stream (show it), False for
    the echo of one that was (drop it). Lines only one stream carries (a crash trace on
    stdout) are all shown. Unmatched lines are remembered up to ``window`` per stream.
    """

    def __init__(self, window: int = 2000) -> None:
        self.window = window
        self._pending: dict[str, Counter[str]] = {}
        self._order: dict[str, deque[str]] = {}

    def first(self, stream: str, line: str) -> bool:
        """Whether ``line`` from ``stream`` is the first copy."""
        key = line.strip()
        if not key:
            return True
        for other, pending in self._pending.items():
            if other != stream and pending[key] > 0:
                pending[key] -= 1
                return False
        pending = self._pending.setdefault(stream, Counter())
        order = self._order.setdefault(stream, deque())
        pending[key] += 1
        order.append(key)
        if len(order) > self.window:
            old = order.popleft()
            if pending[old] > 0:
                pending[old] -= 1
        return True

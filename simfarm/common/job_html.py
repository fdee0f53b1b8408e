"""Jobs as HTML tables for Jupyter (``_repr_html_`` of :class:`~simfarm.common.models.Job`,
:class:`~simfarm.common.models.JobPage` and :class:`JobList`): self-contained markup,
no scripts, every value escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simfarm.common.models import Job

_STATE_COLORS = {"pending": "#7a5a00", "scheduled": "#333a99", "running": "#0b4f8a",
                 "completed": "#1b6b35", "failed": "#8a1c1c", "cancelled": "#555"}
_TABLE = 'style="border-collapse:collapse;font-size:12.5px"'
_CELL = 'style="padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"'


def _e(value: Any) -> str:
    return "—" if value is None or value == "" else html.escape(str(value))


def _state(job: Job) -> str:
    state = job.state.value
    return f'<b style="color:{_STATE_COLORS.get(state, "#333")}">{html.escape(state)}</b>'


def _when(job: Job) -> str:
    end = job.finished_at or job.started_at or job.created_at
    return end.strftime("%Y-%m-%d %H:%M:%S")


def _progress(job: Job) -> str:
    p = job.progress or {}
    if not p:
        return "—"
    parts = []
    if p.get("adaptive_pass") is not None:
        total = f"/{p['max_passes']}" if p.get("max_passes") else ""
        parts.append(f"pass {p['adaptive_pass']}{total}")
    if p.get("delta_s") is not None:
        parts.append(f"ΔS {p['delta_s']:g}")
    if p.get("sweep_frequencies"):
        parts.append(f"sweep {p.get('sweep_solved', 0)}/{p['sweep_frequencies']}")
    return _e(" · ".join(parts) or p.get("phase"))


def jobs_table(jobs: Iterable[Job]) -> str:
    """One row per job: id, name, state, priority, node, exit code, progress, reason."""
    rows = []
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state.value] = counts.get(job.state.value, 0) + 1
        cells = [f"<code>{_e(job.id[:12])}</code>", _e(job.spec.name or job.spec.kind),
                 _state(job), _e(job.priority), _e(job.node), _e(job.exit_code),
                 _progress(job), _e(job.reason or job.error), _e(_when(job))]
        rows.append("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th {_CELL}>{h}</th>" for h in (
        "id", "name", "state", "priority", "node", "exit", "progress", "reason", "last change"))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs"
    return (f"<table {_TABLE}><caption style=\"text-align:left\">{len(rows)} job(s): "
            f"{html.escape(summary)}</caption><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def job_table(job: Job) -> str:
    """One job as a two-column table of what a user looks at first."""
    resources = job.spec.resources
    facts: list[tuple[str, str]] = [
        ("job", f"<code>{_e(job.id)}</code>"), ("name", _e(job.spec.name or job.spec.kind)),
        ("state", _state(job)), ("priority", _e(job.priority)), ("owner", _e(job.owner)),
        ("node", _e(job.node)), ("cores / memory", _e(f"{resources.cores} / "
                                                      f"{resources.memory_mb} MiB")),
        ("attempt", _e(job.attempt)), ("submitted", _e(job.created_at.strftime("%c"))),
        ("started", _e(job.started_at.strftime("%c") if job.started_at else None)),
        ("finished", _e(job.finished_at.strftime("%c") if job.finished_at else None)),
        ("exit code", _e(job.exit_code)), ("reason", _e(job.reason or job.error)),
        ("progress", _progress(job)),
    ]
    if job.sweep_id:
        facts.append(("sweep", _e(f"{job.sweep_id[:12]} #{job.sweep_index}")))
    rows = "".join(f"<tr><th {_CELL}>{k}</th><td {_CELL}>{v}</td></tr>" for k, v in facts)
    return f"<table {_TABLE}><tbody>{rows}</tbody></table>"


class JobList(list["Job"]):
    """A plain list of jobs that Jupyter shows as a table (what ``wait_all`` returns)."""

    def _repr_html_(self) -> str:
        return jobs_table(self)

"""``simfarm submit --wait``: follow one job to its end, as a live panel on a terminal or
as plain output lines otherwise."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from simfarm.client.cli_common import age, call
from simfarm.client.client import Client
from simfarm.client.errors import ConnectionFailed
from simfarm.common.models import Job, JobEvent

STATE_STYLE = {
    "pending": "yellow",
    "held": "dim yellow",
    "scheduled": "cyan",
    "running": "bold blue",
    "completed": "bold green",
    "failed": "bold red",
    "cancelled": "magenta",
}
FINAL = {"completed", "failed", "cancelled"}


class JobView:
    """What the live panel shows, updated from the job's events."""

    def __init__(self, job: Job, tail: int = 8) -> None:
        self.job = job
        self.state = job.state.value
        self.node = job.node or ""
        self.started = time.monotonic()
        self.progress: dict[str, Any] = dict(job.progress or {})
        self.lines: deque[str] = deque(maxlen=tail)

    def apply(self, event: JobEvent) -> None:
        if event.type == "state":
            self.state = str(event.data.get("to", self.state))
            self.node = str(event.data.get("node") or self.node)
        elif event.type == "log":
            self.lines.append(str(event.data.get("line", "")))
        elif event.type == "progress":
            self.progress.update(event.data)

    def fraction(self) -> float | None:
        p = self.progress
        for done, total in (("adaptive_pass", "max_passes"), ("sweep_solved", "sweep_frequencies"),
                            ("done", "total")):
            if isinstance(p.get(done), int | float) and isinstance(p.get(total), int | float):
                if p[total]:
                    return min(1.0, float(p[done]) / float(p[total]))
        if isinstance(p.get("percent"), int | float):
            return min(1.0, float(p["percent"]) / 100.0)
        return None

    def render(self) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        grid.add_row("job", f"{self.job.id}  {self.job.spec.name}".rstrip())
        grid.add_row("state", Text(self.state, style=STATE_STYLE.get(self.state, "")))
        grid.add_row("node", self.node or "-")
        grid.add_row("elapsed", age(time.monotonic() - self.started))
        fraction = self.fraction()
        if fraction is not None:
            bar = ProgressBar(total=1.0, completed=fraction, width=40)
            grid.add_row("progress", Group(bar, Text(_progress_text(self.progress))))
        logs = Text("\n".join(self.lines) or "(no output yet)", style="dim" if not self.lines
                    else "")
        return Panel(Group(grid, Text(""), logs), title="simfarm", expand=False)


def _progress_text(progress: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in progress.items() if k in (
        "phase", "adaptive_pass", "max_passes", "delta_s", "sweep_solved", "percent")]
    return "  ".join(parts)


def follow(client: Client, job: Job, as_json: bool) -> Job:
    """Follow ``job`` until it ends; returns it as it ended."""
    console = Console()
    view = JobView(job)
    live = console.is_terminal and not as_json
    try:
        if live:
            with Live(view.render(), console=console, refresh_per_second=4) as panel:
                for event in _events(client, job.id):
                    view.apply(event)
                    panel.update(view.render())
        else:
            for event in _events(client, job.id):
                if event.type == "log" and not as_json:
                    click.echo(event.data.get("line", ""))
    except ConnectionFailed:  # no WebSocket on this gateway: read the log by long-polling
        for line in call(lambda: list(client.logs(job.id, follow=True))):
            if not as_json:
                click.echo(line)
    return call(lambda: client.wait(job.id))


def _events(client: Client, job_id: str) -> Any:
    for event in client.stream(jobs=[job_id], since="0"):
        yield event
        if event.type == "state" and event.data.get("to") in FINAL:
            return

"""``simfarm watch``: a live table of active jobs fed by the WebSocket, or the raw event
stream as JSON lines."""

from __future__ import annotations

import queue
import threading
import time
from datetime import datetime

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from simfarm.client.cli_common import call, client_options, make_client
from simfarm.client.cli_jobs import jobs_table
from simfarm.client.client import Client
from simfarm.client.errors import ApiError
from simfarm.common.errors import SimfarmError
from simfarm.common.models import Job, JobEvent
from simfarm.common.states import JobState

ACTIVE = (JobState.RUNNING, JobState.SCHEDULED, JobState.PENDING)
REFRESH_S = 10.0


class ActiveJobs:
    """The jobs the table shows, kept current from state events."""

    def __init__(self, client: Client, keep_finished: bool) -> None:
        self.client = client
        self.keep_finished = keep_finished
        self.jobs: dict[str, Job] = {}

    def reload(self) -> None:
        fresh: dict[str, Job] = {}
        for state in ACTIVE:
            for job in self.client.list(state=state, limit=200).jobs:
                fresh[job.id] = job
        if self.keep_finished:
            fresh = {**{k: v for k, v in self.jobs.items() if v.final}, **fresh}
        self.jobs = fresh

    def apply(self, event: JobEvent) -> None:
        if event.type != "state":
            return
        if event.data.get("to") in {s.value for s in JobState if s.final} and (
            not self.keep_finished
        ):
            self.jobs.pop(event.job_id, None)
            return
        try:
            self.jobs[event.job_id] = self.client.get(event.job_id)
        except ApiError:
            self.jobs.pop(event.job_id, None)

    def table(self, width: int) -> Table:
        order = {s: i for i, s in enumerate(ACTIVE)}
        jobs = sorted(self.jobs.values(),
                      key=lambda j: (order.get(j.state, 9), -j.priority, j.created_at))
        return jobs_table(jobs, width, title=f"simfarm jobs  {datetime.now():%H:%M:%S}")


def _pump(client: Client, jobs: list[str] | None, since: str | None,
          out: queue.Queue[JobEvent | BaseException]) -> None:
    try:
        for event in client.stream(jobs=jobs, types=["state"], since=since):
            out.put(event)
    except BaseException as exc:  # handed to the main thread, which reports it
        out.put(exc)


def _line(event: JobEvent) -> str:
    when = datetime.fromtimestamp(event.ts).strftime("%H:%M:%S")
    data = event.data
    move = f"{data.get('from', '-')} -> {data.get('to')}"
    node = f"  node={data['node']}" if data.get("node") else ""
    return f"{when}  {event.job_id}  {move}{node}"


@click.command()
@click.option("--job", "job_ids", multiple=True, metavar="ID", help="only these jobs (repeat)")
@click.option("--since", default=None, metavar="EVENT_ID",
              help="replay events after this id first (0: all kept)")
@click.option("--count", type=click.IntRange(1), default=None,
              help="exit after this many events")
@click.option("--all", "keep_finished", is_flag=True, help="keep finished jobs in the table")
@client_options
@click.pass_context
def watch(ctx: click.Context, job_ids: tuple[str, ...], since: str | None, count: int | None,
          keep_finished: bool, as_json: bool) -> None:
    """Watch jobs live: a table of active jobs on a terminal, one line per state change
    otherwise, or one JSON event per line with --json. Ctrl-C stops."""
    client = make_client(ctx)
    events: queue.Queue[JobEvent | BaseException] = queue.Queue()
    threading.Thread(
        target=_pump, args=(client, list(job_ids) or None, since, events), daemon=True
    ).start()
    console = Console()
    view = ActiveJobs(client, keep_finished)
    live = console.is_terminal and not as_json
    seen = 0
    if live:
        call(view.reload)
    display = (Live(view.table(console.width), console=console, auto_refresh=False) if live
               else _Null())
    with display as screen:
        next_reload = time.monotonic() + REFRESH_S
        while count is None or seen < count:
            try:
                item = events.get(timeout=1.0)
            except queue.Empty:
                item = None
            if isinstance(item, SimfarmError):
                call(lambda exc=item: _raise(exc))  # type: ignore[misc]
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                seen += 1
                if as_json:
                    click.echo(item.model_dump_json())
                elif not live:
                    click.echo(_line(item))
                else:
                    call(lambda ev=item: view.apply(ev))  # type: ignore[misc]
            if live:
                if time.monotonic() >= next_reload:
                    call(view.reload)
                    next_reload = time.monotonic() + REFRESH_S
                screen.update(view.table(console.width), refresh=True)


def _raise(exc: BaseException) -> None:
    raise exc


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, *_: object, **__: object) -> None:
        return None


COMMANDS = [watch]

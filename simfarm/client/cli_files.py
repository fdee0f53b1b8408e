"""Files, sweeps and history commands: ``fetch``, ``upload``, ``submit-batch``,
``sweep`` (submit, status, cancel, fetch), ``resubmit``, ``history``, ``audit``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import click

from simfarm.client.batch import folder_sweep
from simfarm.client.cli_common import (
    UserError,
    call,
    client_options,
    echo_json,
    make_client,
    print_jobs,
)
from simfarm.common.models import Job
from simfarm.common.settings import Settings
from simfarm.common.sweeps import Sweep


def _sweep_lines(sweep: Sweep, children: bool = True) -> None:
    counts = " ".join(f"{k}={v}" for k, v in sweep.counts.items() if v)
    throttle = f"  throttle={sweep.throttle}" if sweep.throttle else ""
    click.echo(f"{sweep.id}  {sweep.state:<9}  size={sweep.size}{throttle}  {counts}")
    if children:
        for child in sweep.children:
            reason = f"  reason={child.reason}" if child.reason else ""
            click.echo(f"  [{child.index}] {child.job_id}  {child.state:<9}  "
                       f"{json.dumps(child.variation)}{reason}")


@click.command()
@click.argument("job_id")
@click.argument("dest", required=False, type=click.Path(file_okay=False))
@click.option("--sweep", "is_sweep", is_flag=True, help="JOB_ID is a sweep: fetch every child")
@client_options
@click.pass_context
def fetch(ctx: click.Context, job_id: str, dest: str | None, is_sweep: bool,
          as_json: bool) -> None:
    """Download a staged job's results into DEST (default: ./JOB_ID)."""
    client = make_client(ctx)
    target = Path(dest or job_id)
    if is_sweep:
        folders = call(lambda: client.download_sweep(job_id, target))
        if as_json:
            echo_json({str(i): str(p) for i, p in folders.items()})
            return
        click.echo(f"results of {len(folders)} children in {target}")
        return
    call(lambda: client.download(job_id, target))
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    if as_json:
        echo_json({"dest": str(target), "files": files})
        return
    click.echo(f"{len(files)} files in {target}")


@click.command()
@click.argument("path", type=click.Path(exists=True))
@client_options
@click.pass_context
def upload(ctx: click.Context, path: str, as_json: bool) -> None:
    """Upload a .aedt/.aedb project (packed, checksummed); prints the `files` section
    of a staged job."""
    client = make_client(ctx)
    files = call(lambda: client.upload_project(Path(path)))
    echo_json(files) if as_json else click.echo(files.model_dump_json())


@click.command("submit-batch")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--recursive", is_flag=True, help="also look in subfolders")
@click.option("--cores", type=int, default=None, help="cores per project (machine list)")
@click.option("--staged/--shared", default=None,
              help="upload each project, or use paths on shared storage [default: file_mode]")
@click.option("--throttle", type=int, default=None, help="at most N projects at once")
@click.option("--priority", type=click.IntRange(0, 10), default=None)
@client_options
@click.pass_context
def submit_batch(ctx: click.Context, folder: str, recursive: bool, cores: int | None,
                 staged: bool | None, throttle: int | None, priority: int | None,
                 as_json: bool) -> None:
    """Submit every .aedb (or .aedt) project in FOLDER as one sweep."""
    client = make_client(ctx)
    if staged is None:
        staged = Settings().file_mode == "staged"
    try:
        spec = folder_sweep(Path(folder), recursive, cores=cores, staged=staged,
                            upload=client.upload_project, throttle=throttle, priority=priority)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    sweep = call(lambda: client.submit_sweep(spec))
    echo_json(sweep) if as_json else _sweep_lines(sweep)


@click.group()
def sweep() -> None:
    """Sweeps: one job per variation of a template."""


@sweep.command("submit")
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False))
@client_options
@click.pass_context
def sweep_submit(ctx: click.Context, spec_file: str, as_json: bool) -> None:
    """Submit a sweep from a JSON or TOML file (template, grid or variations, throttle)."""
    raw = Path(spec_file).read_bytes()
    try:
        data: Any = (tomllib.loads(raw.decode()) if spec_file.endswith(".toml")
                     else json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{spec_file}: {exc}") from exc
    client = make_client(ctx)
    created = call(lambda: client.submit_sweep(data))
    echo_json(created) if as_json else _sweep_lines(created)


@sweep.command("status")
@click.argument("sweep_id")
@client_options
@click.pass_context
def sweep_status(ctx: click.Context, sweep_id: str, as_json: bool) -> None:
    """A sweep's state, counts and children."""
    client = make_client(ctx)
    found = call(lambda: client.get_sweep(sweep_id))
    echo_json(found) if as_json else _sweep_lines(found)


@sweep.command("cancel")
@click.argument("sweep_id")
@client_options
@click.pass_context
def sweep_cancel(ctx: click.Context, sweep_id: str, as_json: bool) -> None:
    """Cancel every unfinished child of a sweep."""
    client = make_client(ctx)
    found = call(lambda: client.cancel_sweep(sweep_id))
    echo_json(found) if as_json else _sweep_lines(found, children=False)


@click.command()
@click.argument("job_id")
@click.option("--priority", type=click.IntRange(0, 10), default=None)
@client_options
@click.pass_context
def resubmit(ctx: click.Context, job_id: str, priority: int | None, as_json: bool) -> None:
    """Run a job's stored spec again as a new job linked to it."""
    client = make_client(ctx)
    print_jobs([call(lambda: client.resubmit(job_id, priority))], as_json)


@click.command()
@click.option("--state", type=click.Choice(["completed", "failed", "cancelled"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@client_options
@click.pass_context
def history(ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """Finished jobs, newest first."""
    client = make_client(ctx)
    page = call(lambda: client.history(state=state, limit=limit))
    print_jobs([Job.model_validate(j) for j in page["jobs"]], as_json)


@click.command()
@click.option("--who", default=None)
@click.option("--action", default=None, help="submit, cancel, priority, limits, upload...")
@click.option("--target", default=None, help="job or sweep id")
@click.option("--limit", type=int, default=50, show_default=True)
@client_options
@click.pass_context
def audit(ctx: click.Context, who: str | None, action: str | None, target: str | None,
          limit: int, as_json: bool) -> None:
    """The audit log (admins): who changed what, from where."""
    client = make_client(ctx)
    entries = call(lambda: client.audit(who=who, action=action, target=target, limit=limit))
    if as_json:
        echo_json(entries)
        return
    for e in entries:
        click.echo(f"{e['id']}  {e['who']}@{e['source']}  {e['action']:<12} "
                   f"{e['status']}  {e.get('target') or '-'}  {e['method']} {e['path']}")


COMMANDS = [fetch, upload, submit_batch, sweep, resubmit, history, audit]

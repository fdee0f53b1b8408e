"""Job commands: ``submit``, ``status``, ``list``, ``logs``, ``cancel``, ``priority``."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click
from pydantic import ValidationError
from rich.table import Table

from simfarm.client.cli_common import (
    UserError,
    age,
    call,
    client_options,
    echo_json,
    make_client,
    parse_pairs,
    print_jobs,
    runtime,
)
from simfarm.client.cli_follow import STATE_STYLE, follow
from simfarm.client.cli_hfss import hfss_from_flags, spec_from_file
from simfarm.client.cli_table import Column, print_table, rich_table
from simfarm.client.specs import hfss_spec
from simfarm.common.models import Job, JobSpec
from simfarm.common.states import JobState

STATES = [s.value for s in JobState]


def _base_spec(
    argv: tuple[str, ...], spec_file: str | None, hfss: dict[str, Any]
) -> dict[str, Any]:
    sources = sum(bool(x) for x in (argv, spec_file, hfss["project"]))
    if sources != 1:
        raise UserError(
            "give exactly one of: a command after --, --file JOB.json|toml, --hfss PROJECT"
        )
    if argv:
        return {"argv": list(argv)}
    if spec_file:
        loaded = spec_from_file(spec_file)
        if isinstance(loaded, dict):
            return loaded
        return hfss_spec(loaded).submit_body()
    config = hfss_from_flags(**hfss)
    return hfss_spec(config).submit_body()


def _apply(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    resources = dict(body.get("resources") or {})
    for key in ("cores", "memory_mb"):
        if overrides[key] is not None:
            resources[key] = overrides[key]
    if overrides["labels"]:
        resources["labels"] = {**resources.get("labels", {}), **overrides["labels"]}
    if resources:
        body["resources"] = resources
    if overrides["env"]:
        body["env"] = {**body.get("env", {}), **overrides["env"]}
    for key in ("name", "priority", "timeout_s", "retries", "account"):
        if overrides[key] is not None:
            body[key] = overrides[key]
    if overrides["depends_on"]:
        body["depends_on"] = {**(body.get("depends_on") or {}), **overrides["depends_on"]}
    if overrides["cwd"]:
        body["cwd"] = os.path.abspath(overrides["cwd"])  # the node needs an absolute path
    return body


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.option("-f", "--file", "spec_file", default=None, metavar="FILE",
              help="job spec or PyEDB HFSS configuration, JSON or TOML")
@click.option("--hfss", "project", default=None, metavar="PROJECT",
              help="run HFSS on this .aedt/.aedb project")
@click.option("--design", default="", help="HFSS design name")
@click.option("--setup", default="", help="HFSS setup name")
@click.option("--design-mode", default="", help="HFSS design mode")
@click.option("--aedt", "aedt_path", default="", metavar="PATH",
              help="ansysedt to use (default: newest on the node)")
@click.option("--scheduler", default=None,
              type=click.Choice(["none", "slurm", "lsf", "pbs", "windows_hpc"],
                                case_sensitive=False),
              help="forward the HFSS job to this cluster scheduler")
@click.option("--machine", "machines", multiple=True, metavar="HOST[:CORES]",
              help="HFSS machine list entry (repeat)")
@click.option("--jobid", default="", help="HFSS job id (default: generated)")
@click.option("--name", default=None, help="job name")
@click.option("--priority", type=int, default=None, help="0 (lowest) to 10, default 5")
@click.option("--cores", type=int, default=None, help="CPU cores to reserve")
@click.option("--memory", "memory_mb", type=int, default=None, help="memory in MiB")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="node label the job needs (repeat)")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE",
              help="environment variable (repeat)")
@click.option("--timeout", "timeout_s", type=float, default=None, help="wall time in seconds")
@click.option("--retries", type=int, default=None, help="re-runs after a lost worker")
@click.option("--account", default=None,
              help="the account the job charges (default: yours; simfarm accounts)")
@click.option("--cwd", default=None, help="working directory on the node")
@click.option("--after", "after_ok", multiple=True, metavar="ID",
              help="start once this job (or sweep) completed (repeat)")
@click.option("--after-any", multiple=True, metavar="ID",
              help="start once this job ended, whatever its state (repeat)")
@click.option("--after-failed", multiple=True, metavar="ID",
              help="start once this job failed or was cancelled (repeat)")
@click.option("--wait", "wait_", is_flag=True, help="follow the job to its end; exit 1 "
              "unless it completed")
@client_options
@click.pass_context
def submit(ctx: click.Context, argv: tuple[str, ...], spec_file: str | None,
           project: str | None, design: str, setup: str, design_mode: str, aedt_path: str,
           scheduler: str | None, machines: tuple[str, ...], jobid: str, name: str | None,
           priority: int | None, cores: int | None, memory_mb: int | None,
           labels: tuple[str, ...], env: tuple[str, ...], timeout_s: float | None,
           retries: int | None, account: str | None, cwd: str | None,
           after_ok: tuple[str, ...],
           after_any: tuple[str, ...], after_failed: tuple[str, ...], wait_: bool,
           as_json: bool) -> None:
    """Submit a job and print its id.

    \b
    simfarm submit [OPTIONS] -- PROGRAM [ARGS]...      a command
    simfarm submit --hfss board.aedt --design main --setup Setup1
    simfarm submit --file job.toml                      a job spec or PyEDB HFSS config
    """
    hfss = {"project": project, "design": design, "setup": setup, "design_mode": design_mode,
            "aedt_path": aedt_path, "scheduler": scheduler, "machines": machines,
            "jobid": jobid}
    body = _apply(_base_spec(argv, spec_file, hfss), {
        "name": name, "priority": priority, "cores": cores, "memory_mb": memory_mb,
        "labels": parse_pairs(labels, "--label"), "env": parse_pairs(env, "--env"),
        "timeout_s": timeout_s, "retries": retries, "account": account, "cwd": cwd,
        "depends_on": {k: list(v) for k, v in (("after_ok", after_ok), ("after_any", after_any),
                                              ("after_failed", after_failed)) if v},
    })
    try:
        spec = JobSpec.model_validate(body)
    except ValidationError as exc:
        raise UserError.invalid(exc) from exc
    client = make_client(ctx)
    job = call(lambda: client.submit(spec))
    if wait_:
        job = follow(client, job, as_json)
        print_jobs([job], as_json)
        sys.exit(0 if job.state is JobState.COMPLETED else 1)
    print_jobs([job], as_json)


@click.command()
@click.argument("job_ids", nargs=-1, required=True)
@client_options
@click.pass_context
def status(ctx: click.Context, job_ids: tuple[str, ...], as_json: bool) -> None:
    """Show jobs' states and, for a finished job, its output."""
    client = make_client(ctx)
    jobs = [call(lambda j=job_id: client.get(j)) for job_id in job_ids]  # type: ignore[misc]
    if as_json:
        print_jobs(jobs, True)
        return
    for job in jobs:
        print_jobs([job], False)
        if job.final:
            for line in call(lambda j=job.id: list(client.logs(j))):  # type: ignore[misc]
                click.echo(f"  | {line}")


JOB_COLUMNS = [
    Column("ID"),
    Column("NAME", flexible=True),
    Column("STATE", style=lambda state: STATE_STYLE.get(state, "")),
    Column("PRI", drop=4),
    Column("NODE", drop=2),
    Column("CORES", drop=5),
    Column("AGE", drop=1),
    Column("RUNTIME", drop=3),
    Column("EXIT", drop=6),
]


def job_rows(jobs: list[Job]) -> list[list[str]]:
    """One row of :data:`JOB_COLUMNS` per job."""
    now = time.time()
    return [[job.id, job.spec.name or " ".join(job.spec.argv), job.state.value,
             str(job.priority), job.node or "-", str(job.spec.resources.cores),
             age(now - job.created_at.timestamp()), runtime(job, now),
             "-" if job.exit_code is None else str(job.exit_code)] for job in jobs]


def jobs_table(jobs: list[Job], width: int, title: str | None = None) -> Table:
    """A table of jobs fitted to ``width``: id, name, state, priority, node, cores, age,
    runtime, exit (the last ones go first when the terminal is narrow)."""
    return rich_table(JOB_COLUMNS, job_rows(jobs), width, title)


@click.command("list")
@click.option("--state", type=click.Choice(STATES), default=None, help="only jobs in this state")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", default=None, help="next_cursor of the previous page")
@client_options
@click.pass_context
def list_(ctx: click.Context, state: str | None, limit: int, cursor: str | None,
          as_json: bool) -> None:
    """List jobs, newest first (queue order with --state). On a terminal the table fits its
    width; in a pipe it is tab-separated (one header line, then one job per line)."""
    client = make_client(ctx)
    page = call(lambda: client.list(state=state, limit=limit, cursor=cursor))
    if as_json:
        echo_json(page.jobs)
        return
    print_table(JOB_COLUMNS, job_rows(page.jobs))
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


@click.command()
@click.argument("job_id")
@click.option("-f", "--follow", "follow_", is_flag=True, help="keep printing until the job ends")
@client_options
@click.pass_context
def logs(ctx: click.Context, job_id: str, follow_: bool, as_json: bool) -> None:
    """Print a job's output lines (with --json: one JSON string per line)."""
    client = make_client(ctx)

    def _stream() -> None:
        for line in client.logs(job_id, follow=follow_):
            click.echo(json.dumps(line) if as_json else line)

    call(_stream)


@click.command()
@click.argument("job_ids", nargs=-1, required=True)
@client_options
@click.pass_context
def cancel(ctx: click.Context, job_ids: tuple[str, ...], as_json: bool) -> None:
    """Cancel jobs (a running job is stopped by its worker)."""
    client = make_client(ctx)
    jobs = [call(lambda j=job_id: client.cancel(j)) for job_id in job_ids]  # type: ignore[misc]
    print_jobs(jobs, as_json)


@click.command()
@click.argument("job_id")
@click.argument("value", type=click.IntRange(0, 10))
@client_options
@click.pass_context
def priority(ctx: click.Context, job_id: str, value: int, as_json: bool) -> None:
    """Change a pending job's priority (0 lowest, 10 highest)."""
    client = make_client(ctx)
    print_jobs([call(lambda: client.set_priority(job_id, value))], as_json)


COMMANDS = [submit, status, list_, logs, cancel, priority]

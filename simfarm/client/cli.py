"""The ``simfarm`` command line. Exit codes: 0 ok, 1 user error, 2 unexpected error."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from simfarm.client.client import Client
from simfarm.client.errors import ApiError, ConnectionFailed
from simfarm.common.errors import SimfarmError
from simfarm.common.models import Job, JobSpec
from simfarm.common.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A mistake the user can fix: printed as one line, exit code 1."""

    exit_code = 1


def _client(ctx: click.Context) -> Client:
    obj = ctx.ensure_object(dict)
    return Client(url=obj.get("url"), token=obj.get("token"))


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ConnectionFailed as exc:
        raise UserError(str(exc)) from exc
    except ApiError as exc:
        raise UserError(f"{exc.detail} ({exc.status} {exc.error})") from exc


def _print_job(job: Job, as_json: bool) -> None:
    if as_json:
        click.echo(job.model_dump_json(indent=2))
        return
    line = f"{job.id}  {job.state.value:<9}  priority={job.priority}"
    if job.node:
        line += f"  node={job.node}"
    if job.exit_code is not None:
        line += f"  exit={job.exit_code}"
    if job.reason:
        line += f"  reason={job.reason}"
    click.echo(line)


@click.group()
@click.option("--url", envvar="SIMFARM_URL", help="gateway URL (default: embedded service)")
@click.option("--token", envvar="SIMFARM_TOKEN", help="bearer token")
@click.option("-v", "--verbose", is_flag=True, help="log more")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, verbose: bool) -> None:
    """simfarm: run HFSS simulations and any command on a farm of machines."""
    from simfarm.common.logs import configure_logging

    configure_logging(logging.INFO if verbose else logging.WARNING)
    ctx.ensure_object(dict).update(url=url, token=token)


@cli.command()
@click.option("--port", type=int, default=None, help="gateway port (default 8765)")
def up(port: int | None) -> None:
    """Start a private Redis, the gateway and one worker; Ctrl-C stops them."""
    from simfarm.client.embedded import EmbeddedService

    settings = Settings()
    service = EmbeddedService(settings, gateway_port=port)
    try:
        service.start()
    except (RuntimeError, TimeoutError) as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"simfarm is up: {service.url}  (dashboard: {service.url}/)")
    click.echo(f"state folder: {settings.state_dir}; press Ctrl-C to stop")
    _serve_until_signal(service)


def _serve_until_signal(service: Any) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        dead = service.check_alive()
        if dead:
            click.echo(f"{dead} stopped unexpectedly; shutting down", err=True)
            break
    click.echo("stopping simfarm ...")
    service.stop()
    click.echo("stopped")


@cli.command()
def worker() -> None:
    """Run a worker for this node (needs SIMFARM_REDIS_URL)."""
    from simfarm.workers.main import run_worker

    try:
        run_worker(Settings())
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc


@cli.command()
def gateway() -> None:
    """Run the gateway (needs SIMFARM_REDIS_URL)."""
    from simfarm.gateway.server import serve

    try:
        serve(Settings())
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--name", default="", help="job name")
@click.option("--priority", type=int, default=5, show_default=True, help="0-10")
@click.option("--cores", type=int, default=1, show_default=True)
@click.option("--memory", "memory_mb", type=int, default=0, help="memory in MiB")
@click.option("--label", "labels", multiple=True, help="required node label key=value")
@click.option("--timeout", "timeout_s", type=float, default=None, help="seconds")
@click.option("--cwd", default=None, help="working directory on the node")
@click.option("--wait", "wait_", is_flag=True, help="wait for the job and print its output")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def submit(
    ctx: click.Context,
    argv: tuple[str, ...],
    name: str,
    priority: int,
    cores: int,
    memory_mb: int,
    labels: tuple[str, ...],
    timeout_s: float | None,
    cwd: str | None,
    wait_: bool,
    as_json: bool,
) -> None:
    """Submit a command: simfarm submit [OPTIONS] -- PROGRAM [ARGS]..."""
    parsed: dict[str, str] = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--label {item!r}: use key=value")
        parsed[key] = value
    try:
        spec = JobSpec(
            name=name,
            argv=list(argv),
            priority=priority,
            cwd=cwd,
            timeout_s=timeout_s,
            resources={"cores": cores, "memory_mb": memory_mb, "labels": parsed},
        )
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'job'}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"invalid job: {reasons}") from exc
    client = _client(ctx)
    job = _call(lambda: client.submit(spec))
    if wait_:
        for line in _call(lambda: list(client.logs(job.id, follow=True))):
            if not as_json:
                click.echo(line)
        job = _call(lambda: client.wait(job.id))
        _print_job(job, as_json)
        sys.exit(0 if job.state.value == "completed" else 1)
    _print_job(job, as_json)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def status(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show a job's state and, when it finished, its output."""
    client = _client(ctx)
    job = _call(lambda: client.get(job_id))
    _print_job(job, as_json)
    if not as_json and job.final:
        for line in _call(lambda: list(client.logs(job_id))):
            click.echo(f"  | {line}")


@cli.command("list")
@click.option("--state", default=None, help="only jobs in this state")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def list_(ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first (or queue order with --state)."""
    client = _client(ctx)
    page = _call(lambda: client.list(state=state, limit=limit))
    if as_json:
        click.echo(json.dumps([j.model_dump(mode="json") for j in page.jobs], indent=2))
        return
    for job in page.jobs:
        _print_job(job, False)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Cancel a job."""
    client = _client(ctx)
    _print_job(_call(lambda: client.cancel(job_id)), as_json)


@cli.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing until the job ends")
@click.pass_context
def logs(ctx: click.Context, job_id: str, follow: bool) -> None:
    """Print a job's output."""
    client = _client(ctx)

    def _stream() -> None:
        for line in client.logs(job_id, follow=follow):
            click.echo(line)

    _call(_stream)


@cli.command()
@click.option("--jobs", "count", type=int, default=4, show_default=True, help="demo jobs")
@click.option("--exit", "exit_after", is_flag=True, help="stop once the demo jobs finished")
def demo(count: int, exit_after: bool) -> None:
    """Start the embedded service, run a few demo jobs and show them finishing."""
    from simfarm.client.demo import run_demo

    try:
        service = run_demo(count, echo=click.echo)
    except (RuntimeError, TimeoutError) as exc:
        raise UserError(str(exc)) from exc
    if exit_after:
        service.stop()
        return
    click.echo("press Ctrl-C to stop")
    _serve_until_signal(service)


def main() -> None:
    """Console-script entry point with simfarm's exit codes."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except SimfarmError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        click.echo(f"unexpected error: {exc!r}", err=True)
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()

"""The ``simfarm`` command line. Exit codes: 0 ok, 1 user error, 2 unexpected error.

Commands live in small modules and are added to the :func:`cli` group at the end of this
file: ``cli_jobs`` (submit, status, list, logs, cancel, priority), ``cli_watch`` (watch),
``cli_farm`` (workers, limits, drain, resume), ``cli_files`` (fetch, upload,
submit-batch, sweep, resubmit, history, audit), ``cli_team`` (hold, release, accounts),
``cli_usage`` (usage); service commands (up, worker, gateway, demo) and ``completion``
are here. Shell completion: docs/cli.md.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Any

import click

from simfarm.client import cli_farm, cli_files, cli_jobs, cli_team, cli_usage, cli_watch
from simfarm.client.cli_common import UserError
from simfarm.client.cli_tokens import hash_token_command, redis_users_command
from simfarm.client.errors import ApiError, ConnectionFailed
from simfarm.common.errors import SimfarmError
from simfarm.common.settings import Settings


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
@click.option("--json", "as_json", is_flag=True,
              help='print {"url", "redis_url", "state_dir"} as one JSON line once up')
def up(port: int | None, as_json: bool) -> None:
    """Start a private Redis, the gateway and one worker; Ctrl-C stops them."""
    from simfarm.client.embedded import EmbeddedService

    settings = Settings()
    stop = _stop_on_signals()  # before any part starts: a signal meanwhile stops them
    service = EmbeddedService(settings, gateway_port=port)
    _start(service, stop)
    if as_json:
        click.echo(json.dumps({"url": service.url, "redis_url": service.redis_url,
                               "state_dir": str(settings.state_dir)}))
    else:
        click.echo(f"simfarm is up: {service.url}")
        click.echo(f"dashboard (one-time sign-in link): {service.login_url}")
        click.echo(f"state folder: {settings.state_dir}; press Ctrl-C to stop")
    _serve_until_signal(service, stop, quiet=as_json)


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT, SIGTERM or SIGHUP (the terminal closed)."""
    stop = threading.Event()
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, lambda *_: stop.set())
    return stop


def _start(service: Any, stop: threading.Event) -> None:
    """Start ``service``; exit 0 when a signal cancelled the start, 1 when it failed."""
    from simfarm.client.embedded import StartCancelled

    try:
        service.start(cancel=stop)
    except StartCancelled:
        click.echo("stopped while starting", err=True)
        sys.exit(0)
    except (RuntimeError, TimeoutError) as exc:
        raise UserError(str(exc)) from exc


def _serve_until_signal(service: Any, stop: threading.Event, quiet: bool = False) -> None:
    while not stop.wait(1.0):
        dead = service.check_alive()
        if dead:
            click.echo(f"{dead} stopped unexpectedly; shutting down", err=True)
            break
    click.echo("stopping simfarm ...", err=quiet)
    service.stop()
    click.echo("stopped", err=quiet)


@cli.command()
def worker() -> None:
    """Run a worker for this node (needs SIMFARM_REDIS_URL)."""
    from simfarm.workers.main import run_worker

    try:
        run_worker(Settings())
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--port", type=int, default=5555, show_default=True, help="Flower's HTTP port")
@click.option("--address", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--allow-control", is_flag=True,
              help="let Flower revoke tasks (off: cancel jobs with simfarm instead)")
@click.argument("flower_options", nargs=-1, type=click.UNPROCESSED)
def flower(port: int, address: str, allow_control: bool, flower_options: tuple[str, ...]) -> None:
    """Run Celery Flower on this farm's broker (needs SIMFARM_REDIS_URL). Extra options
    go to Flower, e.g. --basic-auth=admin:secret."""
    from simfarm.workers.flower import flower_argv, run_flower

    try:
        settings = Settings()
        argv = flower_argv(settings, port=port, address=address,
                           read_only=not allow_control, extra=flower_options)
        status = run_flower(settings, argv)
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc
    sys.exit(status)


@cli.command()
def gateway() -> None:
    """Run the gateway (needs SIMFARM_REDIS_URL)."""
    from simfarm.common.logs import configure_logging
    from simfarm.gateway.server import serve

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, settings.node_name)
    try:
        serve(settings)
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc


@cli.command()
@click.option("--jobs", "count", type=int, default=4, show_default=True, help="demo jobs")
@click.option("--exit", "exit_after", is_flag=True, help="stop once the demo jobs finished")
def demo(count: int, exit_after: bool) -> None:
    """Start the embedded service, run a few demo jobs and show them finishing."""
    from simfarm.client.demo import run_demo

    stop = _stop_on_signals()
    try:
        service = run_demo(count, echo=click.echo, start=lambda svc: _start(svc, stop))
    except (RuntimeError, TimeoutError) as exc:
        raise UserError(str(exc)) from exc
    if exit_after:
        service.stop()
        return
    click.echo("press Ctrl-C to stop")
    _serve_until_signal(service, stop)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish (see docs/cli.md)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "simfarm", "_SIMFARM_COMPLETE").source())


for _command in [*cli_jobs.COMMANDS, *cli_watch.COMMANDS, *cli_farm.COMMANDS,
                 *cli_files.COMMANDS, *cli_team.COMMANDS, *cli_usage.COMMANDS,
                 hash_token_command, redis_users_command]:
    cli.add_command(_command)


def _wants_json(argv: list[str]) -> bool:
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def _fail(code: int, message: str, as_json: bool, error: UserError | None = None) -> None:
    if as_json:
        body = (error or UserError(message, error="unexpected" if code == 2 else "user_error"))
        click.echo(json.dumps(body.as_json()), err=True)
    else:
        click.echo(message, err=True)
    sys.exit(code)


def _usage_error(exc: click.ClickException) -> UserError:
    """A command-line mistake (unknown option, bad value): ``usage_error``, with the
    option in ``fields`` when click names it."""
    if isinstance(exc, UserError):
        return exc
    param = getattr(exc, "param", None)
    name = getattr(param, "name", None) or getattr(exc, "option_name", None)
    fields = [{"field": str(name), "reason": exc.message}] if name else []
    return UserError(exc.format_message(), error="usage_error", fields=fields)


def main() -> None:
    """Console-script entry point with simfarm's exit codes (0 ok, 1 user error,
    2 unexpected); with ``--json`` an error is one JSON line on stderr:
    ``{"error", "detail", "status", "fields"}`` (see :class:`UserError`)."""
    as_json = _wants_json(sys.argv[1:])
    try:
        cli.main(prog_name="simfarm", standalone_mode=False)
    except click.exceptions.Abort:
        _fail(1, "aborted", as_json, UserError("aborted", error="aborted"))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if as_json:
            _fail(1, exc.format_message(), True, _usage_error(exc))
        exc.show()
        sys.exit(1)
    except ApiError as exc:
        _fail(1, f"error: {exc}", as_json, UserError.from_api(exc))
    except ConnectionFailed as exc:
        _fail(1, f"error: {exc}", as_json, UserError(str(exc), error="connection_failed"))
    except SimfarmError as exc:
        _fail(1, f"error: {exc}", as_json, UserError(str(exc)))
    except KeyboardInterrupt:
        _fail(1, "interrupted", as_json, UserError("interrupted", error="interrupted"))
    except Exception as exc:
        _fail(2, f"unexpected error: {exc!r}", as_json)
    sys.exit(0)


if __name__ == "__main__":
    main()

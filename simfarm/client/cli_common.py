"""What every ``simfarm`` command shares: the client options (``--url``, ``--token``,
``--json``), turning errors into one-line messages, and printing jobs."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError

from simfarm.client.client import Client
from simfarm.client.errors import ApiError, ConnectionFailed
from simfarm.common.models import Job

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class UserError(click.ClickException):
    """A mistake the user can fix: printed as one line, exit code 1.

    With ``--json`` it is printed as :meth:`as_json`: ``error`` (the API's code, e.g.
    ``not_found``, ``validation_error``, or ``user_error``/``connection_failed`` for
    mistakes found before any answer), ``detail``, ``status`` (the HTTP status, or
    null) and ``fields`` (each ``{field, reason}``)."""

    exit_code = 1

    def __init__(self, message: str, *, error: str = "user_error", status: int | None = None,
                 fields: list[dict[str, Any]] | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status
        self.fields = list(fields or [])
        self.detail = message if detail is None else detail

    @classmethod
    def from_api(cls, exc: ApiError) -> UserError:
        """The gateway's refusal: its code, status and fields kept as they are."""
        return cls(f"{exc.detail} ({exc.status} {exc.error})", error=exc.error,
                   status=exc.status, fields=exc.fields, detail=exc.detail)

    @classmethod
    def invalid(cls, exc: ValidationError, what: str = "job") -> UserError:
        """A spec refused before sending it: ``validation_error`` with its fields."""
        fields = [{"field": ".".join(map(str, e["loc"])) or what, "reason": e["msg"]}
                  for e in exc.errors()]
        message = f"invalid {what}: " + "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
        return cls(message, error="validation_error", fields=fields)

    def as_json(self) -> dict[str, Any]:
        """The error as a script reads it (``--json``)."""
        return {"error": self.error, "detail": self.detail, "status": self.status,
                "fields": self.fields}


def client_options(command: F) -> F:
    """Add ``--url``, ``--token`` and ``--json`` to a command. ``--url``/``--token`` given
    to the command win over those given to ``simfarm`` itself, which default to
    ``SIMFARM_URL``/``SIMFARM_TOKEN``."""

    @click.option("--url", "cmd_url", default=None, metavar="URL",
                  help="gateway URL [env: SIMFARM_URL; default: `simfarm up`'s]")
    @click.option("--token", "cmd_token", default=None, metavar="TOKEN",
                  help="bearer token [env: SIMFARM_TOKEN]")
    @click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
    @functools.wraps(command)
    def wrapper(*args: Any, cmd_url: str | None, cmd_token: str | None, **kwargs: Any) -> Any:
        obj = click.get_current_context().ensure_object(dict)
        if cmd_url:
            obj["url"] = cmd_url
        if cmd_token:
            obj["token"] = cmd_token
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def make_client(ctx: click.Context) -> Client:
    """The client for this invocation (closed when the command ends)."""
    obj = ctx.ensure_object(dict)
    client = Client(url=obj.get("url"), token=obj.get("token"))
    ctx.call_on_close(client.close)
    return client


def call(fn: Callable[[], T]) -> T:
    """Run a client call, turning expected failures into a :class:`UserError`."""
    try:
        return fn()
    except ConnectionFailed as exc:
        raise UserError(str(exc), error="connection_failed") from exc
    except ApiError as exc:
        raise UserError.from_api(exc) from exc
    except ValidationError as exc:
        raise UserError.invalid(exc) from exc


def echo_json(value: Any) -> None:
    """Print a model, a list of models or plain data as indented JSON."""
    click.echo(json.dumps(_plain(value), indent=2))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def job_line(job: Job) -> str:
    """One line about a job: ``ID  STATE  priority=P  node=N  exit=E  reason=R``."""
    line = f"{job.id}  {job.state.value:<9}  priority={job.priority}"
    if job.node:
        line += f"  node={job.node}"
    if job.exit_code is not None:
        line += f"  exit={job.exit_code}"
    if job.reason:
        line += f"  reason={job.reason}"
    return line


def print_jobs(jobs: Iterable[Job], as_json: bool) -> None:
    """Print jobs one line each, or as one JSON object (one job) / list."""
    jobs = list(jobs)
    if as_json:
        echo_json(jobs[0] if len(jobs) == 1 else jobs)
        return
    for job in jobs:
        click.echo(job_line(job))


def age(seconds: float) -> str:
    """``42s``, ``5m07s``, ``3h12m``, ``2d04h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def runtime(job: Job, now: float | None = None) -> str:
    """How long the job has run (or ran), or ``-``."""
    if job.started_at is None:
        return "-"
    end = job.finished_at.timestamp() if job.finished_at else (now or time.time())
    return age(end - job.started_at.timestamp())


def parse_pairs(items: Iterable[str], option: str) -> dict[str, str]:
    """``key=value`` options into a dict (a one-line error otherwise)."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} {item!r}: use key=value")
        parsed[key] = value
    return parsed

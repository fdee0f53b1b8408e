"""Farm commands: ``workers`` (nodes, free resources, jobs), ``licenses`` (the farm's
floating licence pools), ``limits`` (show or change a node's local limits at run time),
``drain`` and ``resume`` (take a node out for maintenance and put it back)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from simfarm.client.cli_common import (
    age,
    call,
    client_options,
    echo_json,
    make_client,
    parse_pairs,
)
from simfarm.client.cli_table import Column, print_table
from simfarm.common.license_pools import LicenseStatus
from simfarm.common.models import NodeInfo


def _gib(mb: int) -> str:
    return f"{mb / 1024:.1f}G"


def _status_style(status: str) -> str:
    if status == "lost":
        return "red"
    return "yellow" if status.startswith(("held", "drain")) else "green"


WORKER_COLUMNS = [
    Column("NODE"),
    Column("STATUS", flexible=True, style=_status_style),
    Column("CORES"),
    Column("MEMORY", drop=3),
    Column("DISK", drop=4),
    Column("JOBS", drop=2),
    Column("SEEN", drop=5),
    Column("LABELS", drop=6),
]


def worker_rows(nodes: list[NodeInfo]) -> list[list[str]]:
    """One row of :data:`WORKER_COLUMNS` per node: liveness, free/total cores, memory
    and disk, jobs/slots, last heartbeat, labels."""
    now = time.time()
    rows = []
    for node in nodes:
        status = node.availability
        if node.drain is not None and node.alive:
            status = f"{status}: {node.drain.describe()}"
        elif status == "held":
            status = f"held: {node.held_reason}"
        rows.append([
            node.name,
            status,
            f"{node.cores_free}/{node.cores_total}",
            f"{_gib(node.memory_mb_free)}/{_gib(node.memory_mb_total)}",
            f"{_gib(node.disk_mb_free)}/{_gib(node.disk_mb_total)}",
            f"{len(node.jobs)}/{node.max_jobs}",
            age(now - node.last_seen) + " ago" if node.last_seen else "-",
            " ".join(f"{k}={v}" for k, v in sorted(node.labels.items())),
        ])
    return rows


@click.command()
@client_options
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> None:
    """List worker nodes with their free resources and running jobs."""
    client = make_client(ctx)
    nodes = call(client.workers)
    if as_json:
        echo_json(nodes)
        return
    if not nodes:
        click.echo("no worker nodes registered; start one with `simfarm worker`", err=True)
        return
    print_table(WORKER_COLUMNS, worker_rows(nodes))


def _source_style(source: str) -> str:
    return {"fallback": "red", "last-good": "yellow"}.get(source.split()[0], "green")


LICENSE_COLUMNS = [
    Column("POOL"),
    Column("FREE"),
    Column("HELD"),
    Column("OUTSIDE", drop=4),
    Column("LIMIT", drop=3),
    Column("WAITING", drop=2),
    Column("SOURCE", style=_source_style, drop=5),
    Column("SERVER", flexible=True, drop=6),
]


def license_rows(pools: list[LicenseStatus]) -> list[list[str]]:
    """One row of :data:`LICENSE_COLUMNS` per pool."""
    rows = []
    for pool in pools:
        polled = f" {age(time.time() - pool.polled_at)} ago" if pool.polled_at else ""
        rows.append([pool.name, f"{pool.free}/{pool.count}", str(pool.held), str(pool.outside),
                     str(pool.limit), str(pool.waiting), pool.source,
                     f"{pool.server}{polled}" if pool.server else "-"])
    return rows


@click.command()
@client_options
@click.pass_context
def licenses(ctx: click.Context, as_json: bool) -> None:
    """List the farm's floating licence pools: free of the configured count, held by farm
    jobs, in use outside the farm, the limit farm jobs may hold now, jobs waiting, where
    the figures come from and the license server (with any warning below)."""
    client = make_client(ctx)
    pools = call(client.licenses)
    if as_json:
        echo_json(pools)
        return
    if not pools:
        click.echo("no licence pools configured ([[licenses]] in simfarm.toml)", err=True)
        return
    print_table(LICENSE_COLUMNS, license_rows(pools))
    for pool in pools:
        if pool.warning:
            click.secho(f"warning: {pool.name}: {pool.warning}", fg="yellow", err=True)


UNSET = "unset (no limit)"


def _value(text: str) -> Any:
    try:
        return json.loads(text)  # numbers, true/false, null
    except ValueError:
        return text


@click.command()
@click.argument("node")
@click.option("--set", "changes", multiple=True, metavar="NAME=VALUE",
              help="change a limit, e.g. --set max_jobs=2 --set max_cpu_percent=80 (repeat)")
@client_options
@click.pass_context
def limits(ctx: click.Context, node: str, changes: tuple[str, ...], as_json: bool) -> None:
    """Show a node's local limits, or change them at run time with --set (null unsets).

    \b
    max_jobs             most jobs at once (unset: the worker's slots; 0 holds the node)
    max_cpu_percent      take no new job while CPU use is above this
    max_memory_percent   take no new job while memory use is above this
    min_free_memory_mb   take no new job while free memory is below this
    min_free_disk_mb     take no new job while free scratch disk is below this
    """
    client = make_client(ctx)
    updates = {k: _value(v) for k, v in parse_pairs(changes, "--set").items()}
    current = call(lambda: client.set_limits(node, **updates) if updates else client.limits(node))
    if as_json:
        echo_json(current)
        return
    for key, value in current.items():
        click.echo(f"{key:<22} {UNSET if value is None else value}")


@click.command()
@click.argument("node")
@click.option("--reason", default="", help="why (shown with the node's status)")
@client_options
@click.pass_context
def drain(ctx: click.Context, node: str, reason: str, as_json: bool) -> None:
    """Drain a node (admins): no new jobs start there, running ones finish; then
    `simfarm workers` shows it drained. `simfarm resume NODE` puts it back."""
    client = make_client(ctx)
    _print_node(call(lambda: client.drain(node, reason)), as_json)


@click.command()
@click.argument("node")
@client_options
@click.pass_context
def resume(ctx: click.Context, node: str, as_json: bool) -> None:
    """Resume a drained node (admins): it takes jobs again."""
    client = make_client(ctx)
    _print_node(call(lambda: client.resume(node)), as_json)


def _print_node(node: NodeInfo, as_json: bool) -> None:
    if as_json:
        echo_json(node)
    else:
        print_table(WORKER_COLUMNS, worker_rows([node]))


COMMANDS = [workers, licenses, limits, drain, resume]
